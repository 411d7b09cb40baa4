"""The fast kernels: the same layers as `minibert.layers`, rewritten for speed on a CPU.

Each one names the textbook function it stands for, and tests/test_kernels.py proves the two
equal on random inputs (float64 to ~1e-12 relative; float32 within stated bounds), masked,
infinite and NaN rows included.  A layer with no faster form is the textbook one, re-exported
(dropout, the embedding lookup, the mask bias), so this module offers every name the models
call; `minibert.ops` picks this module or `minibert.layers`.

How they are faster: the matrix products are one BLAS call per linear layer (leading axes
flattened); everything between the products runs a block of rows at a time on every core
(parallel.py); two steps that follow each other run as one where that saves a pass over
memory (add_layer_norm, linear_activation, the stacked Q, K, V projection).
"""

from ..layers.attention import attention_mask_bias
from ..layers.dropout import dropout_backward, dropout_forward
from ..layers.embedding import embedding_forward
from .adam import adam_update
from .attention import (packed_self_attention_backward, packed_self_attention_forward, self_attention_backward,
                        self_attention_forward)
from .cross_entropy import cross_entropy_backward, cross_entropy_forward
from .embedding import embedding_backward
from .gelu import gelu_backward, gelu_forward
from .layer_norm import (add_layer_norm_backward, add_layer_norm_forward, layer_norm_backward,
                         layer_norm_forward)
from .linear import linear_activation_backward, linear_activation_forward, linear_backward, linear_forward
from .softmax import softmax_backward, softmax_forward
