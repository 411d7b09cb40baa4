"""exp, the normal CDF and tanh inside compiled loops, written so that LLVM vectorises them.

`math.exp(x)` in a Numba loop is a call into the C library for every number: the loop cannot be
vectorised and runs no faster than NumPy's ufunc chain.  For float32 these functions are instead
polynomials -- multiplies, adds, one divide, min/max and a bit shift -- that LLVM turns into 8-wide
AVX2 (16-wide AVX-512) code.  For float64 (the precision the checks run in) they are the C
library's own, exact to the last bit or two, so float64 results stay within 1e-12 of the textbook.

Each function is typed on its argument (Numba's `overload`): `exp(x)` with a float32 x is the polynomial, with a
float64 x it is `math.exp`.  Error bounds, measured against float64 over every float32 in range
(tests/test_kernels.py::test_elementary_functions checks them):

    exp   Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-5 polynomial for exp(r), times 2^n
          built from its exponent bits.  Relative error < 1 eps32 (eps32 = 1.19e-7; measured 0.7).
          exp(x) = 0 below -87.33 (exactly zero, as a masked score must be), inf above 88.72,
          NaN for NaN.
    normal_cdf   Phi(x) and exp(-x^2 / 2) for GELU's backward.  Phi(-|x|) = erfc(|x| / sqrt 2) / 2 by
          Abramowitz & Stegun 7.1.26 (|error in erfc| < 1.5e-7), a rational polynomial times the
          Gaussian, which it returns too; Phi(x) = 1 - Phi(-x) for x >= 0.  |error in Phi| < 3 eps32
          (measured 2.1); in the Gaussian < eps32 (2 + x^2 / 2) relative, -x^2 / 2 being rounded first.  The small side is computed directly, so
          x Phi(x) has no cancellation: |error| < 2 eps32 max(|x|, 1).
    erf   for GELU's forward, the rational form Eigen and XLA use for float32: erf(u) = u P(u^2) / Q(u^2)
          on u clamped to [-4, 4] (beyond, erf is +-1 to float32), P of degree 6 and Q of degree 4
          in u^2, then clamped to [-1, 1]: only multiplies, adds, one divide and min/max, no exp.
          |error| < 3 eps32 (measured 2.7).  In GELU, x (1 + erf(x / sqrt 2)) / 2 stays within
          2 eps32 max(|x|, 1) (measured 1.8; the cancellation of 1 + erf at x < 0 is multiplied
          by |x| / 2).
    tanh  1 - 2 / (exp(2x) + 1) on the exp above.  Absolute error < 2 eps32 (measured 1.5); near 0
          the relative error is larger (1 - ... cancels), which the callers' absolute sums absorb.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# fastmath flags for the kernels that sum: `reassoc` lets LLVM add a row in 8 lanes and then the
# lanes (a vectorised sum, and a more accurate one than left to right), `contract` fuses a * b + c.
# NaN and inf keep their IEEE meaning (no `nnan` / `ninf`), so a NaN still spreads as in NumPy.
SUMS = {"reassoc", "contract"}

LOG2_E = 1.4426950408889634
LN2_HI, LN2_LO = 0.693359375, -2.12194440e-4          # ln 2 in two parts: n * LN2_HI is exact
EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
            1.6666665459e-1, 5.0000001201e-1)          # Cephes expf, exp(r) = 1 + r + r^2 P(r)
EXP_MAX, EXP_MIN = 88.72283905206835, -87.33654475055310

# Abramowitz & Stegun 7.1.26: erfc(u) = t (a1 + t (a2 + ... + t a5)) exp(-u^2), t = 1 / (1 + p u),
# u >= 0, |error| < 1.5e-7.  With u = |x| / sqrt 2: t = 1 / (1 + (p / sqrt 2) |x|).
AS_P = 0.3275911 / math.sqrt(2.0)
AS_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)     # a5 .. a1

# erf(u) = u P(u^2) / Q(u^2) on [-4, 4]: Eigen's generic_fast_erf_float (also XLA's and TVM's
# float32 erf), highest power first.
ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
         -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
         -1.42647390514189e-02)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 `bits` (C's memcpy; one register move)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


def exp(x):
    """e^x: the polynomial for float32 x, math.exp for float64 (see the module's docstring)."""
    return math.exp(x)


def normal_cdf(x):
    """(Phi(x), exp(-x^2 / 2)): the standard normal CDF and the Gaussian, for GELU; A & S 7.1.26
    for float32 x, math.erf and math.exp for float64."""
    return 0.5 * (1.0 + math.erf(x * math.sqrt(0.5))), math.exp(-0.5 * x * x)


def erf(x):
    """erf(x): the rational form for float32 x, math.erf for float64."""
    return math.erf(x)


def tanh(x):
    """tanh(x): from exp for float32 x, math.tanh for float64."""
    return math.tanh(x)


@njit(inline="always")
def _power_of_two(n):
    """2^n as a float32, for an int32 n in [-126, 127]: the exponent field is n + 127."""
    return _float32_from_bits((n + np.int32(127)) << np.int32(23))


@njit(inline="always")
def exp_float32(x):
    f = np.float32
    xc = min(max(x, f(EXP_MIN)), f(EXP_MAX))            # in range (and a NaN becomes a number here)
    n = np.floor(xc * f(LOG2_E) + f(0.5))               # the nearest integer to x / ln 2
    r = xc - n * f(LN2_HI) - n * f(LN2_LO)              # |r| <= ln 2 / 2
    p = f(EXP_POLY[0])
    for c in EXP_POLY[1:]:
        p = p * r + f(c)
    er = p * r * r + r + f(1.0)                         # exp(r)
    n_half = np.int32(n) >> np.int32(1)                  # 2^n = 2^(n // 2) 2^(n - n // 2): n is in
    y = er * _power_of_two(n_half) * _power_of_two(np.int32(n) - n_half)    # [-126, 128], each half normal
    if x < f(EXP_MIN):
        y = f(0.0)
    if x > f(EXP_MAX):
        y = f(np.inf)
    if x != x:
        y = x
    return y


@njit(inline="always")
def normal_cdf_float32(x):
    f = np.float32
    z = abs(x)
    gauss = exp_float32(f(-0.5) * z * z)                 # exp(-x^2 / 2)
    t = f(1.0) / (f(1.0) + f(AS_P) * z)
    poly = f(AS_A[0])
    for a in AS_A[1:]:
        poly = poly * t + f(a)
    half_tail = f(0.5) * t * poly * gauss                # Phi(-|x|) = erfc(|x| / sqrt 2) / 2
    cdf = half_tail if x < f(0.0) else f(1.0) - half_tail  # the small side computed directly, no 1 - 1 cancels
    return cdf, gauss


@njit(inline="always")
def erf_float32(x):
    f = np.float32
    u = min(max(x, f(-4.0)), f(4.0))
    u2 = u * u
    p = f(ERF_P[0]) * u2 + f(ERF_P[1])                 # Horner's rule, written out (a loop over the
    p = (((p * u2 + f(ERF_P[2])) * u2 + f(ERF_P[3])) * u2 + f(ERF_P[4])) * u2 + f(ERF_P[5])   # constants
    p = p * u2 + f(ERF_P[6])                             # here upsets Numba's inlining)
    q = (((f(ERF_Q[0]) * u2 + f(ERF_Q[1])) * u2 + f(ERF_Q[2])) * u2 + f(ERF_Q[3])) * u2 + f(ERF_Q[4])
    return min(max(u * p / q, f(-1.0)), f(1.0))


@njit(inline="always")
def _float64_normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x * 0.7071067811865476)), math.exp(-0.5 * x * x)


@njit(inline="always")
def tanh_float32(x):
    f = np.float32
    return f(1.0) - f(2.0) / (exp_float32(f(2.0) * x) + f(1.0))


def _typed(float32_version, float64_version):
    def choose(x):
        return float32_version if x == types.float32 else float64_version
    return choose


overload(exp, inline="always")(_typed(lambda x: exp_float32(x), lambda x: math.exp(x)))
overload(normal_cdf, inline="always")(_typed(lambda x: normal_cdf_float32(x), lambda x: _float64_normal_cdf(x)))
overload(erf, inline="always")(_typed(lambda x: erf_float32(x), lambda x: math.erf(x)))
overload(tanh, inline="always")(_typed(lambda x: tanh_float32(x), lambda x: math.tanh(x)))
