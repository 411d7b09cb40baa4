"""The fast kernels: the same layers as `minibert.layers`, compiled with Numba for a CPU.

Each one names the textbook function it stands for, and tests/test_kernels.py proves the two
equal on random inputs (float64 to ~1e-12 relative; float32 within stated bounds), masked,
infinite and NaN rows included.  A layer with no faster form is the textbook one, re-exported
(the mask bias), so this module offers every name the models call; `minibert.ops` picks this
module or `minibert.layers`.

How they are faster: the matrix products are one BLAS call per linear layer (leading axes
flattened).  Everything between the products -- bias + GELU, add + LayerNorm, softmax, attention
inside each sequence, dropout, the loss, the AdamW update, the embedding gather and scatter-add --
is one compiled pass (Numba, `@njit(parallel=True)`) over the rows, the rows shared among the
threads, with exp and the normal CDF as polynomials LLVM vectorises (elementary.py).  Importing this package
needs numba; `minibert.ops` falls back to the textbook layers when it cannot be imported.
Compiled code is cached on disk (`cache=True`), so only the first process on a machine pays
for compiling it.
"""

from ..layers.attention import attention_mask_bias
from .adam import adam_update
from .attention import (packed_self_attention_backward, packed_self_attention_forward, self_attention_backward,
                        self_attention_forward)
from .cross_entropy import cross_entropy_backward, cross_entropy_forward
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward
from .gelu import gelu_backward, gelu_forward, gelu_tanh_backward, gelu_tanh_forward
from .layer_norm import (add_layer_norm_backward, add_layer_norm_forward, layer_norm_backward,
                         layer_norm_forward)
from .linear import linear_activation_backward, linear_activation_forward, linear_backward, linear_forward
from .softmax import softmax_backward, softmax_forward
