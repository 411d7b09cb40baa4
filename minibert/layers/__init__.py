"""The textbook layers: every forward and backward of BERT, plainly, one layer a module.

Shapes: B batch, T sequence, C hidden, H heads, D = C // H head size, I intermediate, V vocabulary,
N rows (any leading axes flattened), K classes; `...` any leading axes.

Every layer is a pair of pure functions, with the same convention everywhere:

    y, cache = f_forward(x, params...)      # the cache holds whatever the backward needs
    dx, grads = f_backward(dy, cache)       # grads: {parameter name: gradient}, {} if none

Plain NumPy, no threads, no scratch buffers, no tricks: read these first.  `minibert.kernels`
holds the fast versions, each tested equal to the one here; `minibert.ops` picks which of the
two the models run (`MINIBERT_REFERENCE=1` runs these).
"""

from .activations import (ACTIVATIONS, gelu_backward, gelu_forward, gelu_tanh_backward, gelu_tanh_forward,
                          relu_backward, relu_forward, tanh_backward, tanh_forward)
from .adam import adam_update
from .attention import (attention_mask_bias, packed_self_attention_backward, packed_self_attention_forward,
                        self_attention_backward, self_attention_forward)
from .cross_entropy import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .embedding import embedding_backward, embedding_forward
from .fused import (add_layer_norm_backward, add_layer_norm_forward, linear_activation_backward,
                    linear_activation_forward)
from .layer_norm import layer_norm_backward, layer_norm_forward
from .linear import linear_backward, linear_forward
from .softmax import softmax_backward, softmax_forward
