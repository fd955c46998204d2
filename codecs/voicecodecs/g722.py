"""ITU-T G.722 wideband ADPCM at 64 kbit/s (mode 1), vectorised over channels.

The encoder splits 16 kHz audio with a 24-tap quadrature mirror filter into a low band (0-4 kHz,
6-bit ADPCM) and a high band (4-8 kHz, 2-bit ADPCM); each octet carries ``ihigh << 6 | ilow`` for one
pair of input samples, so ``n`` samples become ``n // 2`` octets. The arithmetic follows the ITU-T
G.722 block description as written in the widely used public-domain implementation by Steve Underwood
(spandsp, libg722) and is bit-exact with the ``G722`` package from PyPI (libg722).

RTP: the payload type is 9 and, per RFC 3551 section 4.5.2, the RTP clock rate is 8000 Hz although
the audio is sampled at 16 kHz (an error in RFC 1890 kept for compatibility). A 20 ms packet holds
320 samples as 160 octets and advances the RTP timestamp by 160, and SDP says ``G722/8000``.

Vectorisation: the two QMF filters are plain FIR filters and run over the whole block at once. The
ADPCM recursions must step through the samples, but each step processes every channel and both
sub-bands together: band state is held as ``(2 * channels,)`` arrays, low bands first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["RTP_CLOCK_RATE", "SAMPLE_RATE", "G722Decoder", "G722Encoder"]

SAMPLE_RATE = 16000
RTP_CLOCK_RATE = 8000  # RFC 3551 4.5.2: G.722 is signalled at 8000 Hz for historical reasons

_I64 = np.int64

_QMF = np.array([3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11], dtype=_I64)
_Q6 = np.array(
    [
        0,
        35,
        72,
        110,
        150,
        190,
        233,
        276,
        323,
        370,
        422,
        473,
        530,
        587,
        650,
        714,
        786,
        858,
        940,
        1023,
        1121,
        1219,
        1339,
        1458,
        1612,
        1765,
        1980,
        2195,
        2557,
        2919,
        0,
        0,
    ],
    dtype=_I64,
)
_ILN = np.array(
    [
        0,
        63,
        62,
        31,
        30,
        29,
        28,
        27,
        26,
        25,
        24,
        23,
        22,
        21,
        20,
        19,
        18,
        17,
        16,
        15,
        14,
        13,
        12,
        11,
        10,
        9,
        8,
        7,
        6,
        5,
        4,
        0,
    ],
    dtype=_I64,
)
_ILP = np.array(
    [
        0,
        61,
        60,
        59,
        58,
        57,
        56,
        55,
        54,
        53,
        52,
        51,
        50,
        49,
        48,
        47,
        46,
        45,
        44,
        43,
        42,
        41,
        40,
        39,
        38,
        37,
        36,
        35,
        34,
        33,
        32,
        0,
    ],
    dtype=_I64,
)
_RL42 = np.array([0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0], dtype=_I64)
_WL = np.array([-60, -30, 58, 172, 334, 538, 1198, 3042], dtype=_I64)
_ILB = np.array(
    [
        2048,
        2093,
        2139,
        2186,
        2233,
        2282,
        2332,
        2383,
        2435,
        2489,
        2543,
        2599,
        2656,
        2714,
        2774,
        2834,
        2896,
        2960,
        3025,
        3091,
        3158,
        3228,
        3298,
        3371,
        3444,
        3520,
        3597,
        3676,
        3756,
        3838,
        3922,
        4008,
    ],
    dtype=_I64,
)
_QM4 = np.array(
    [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0],
    dtype=_I64,
)
_QM2 = np.array([-7408, -1616, 7408, 1616], dtype=_I64)
_QM6 = np.array(
    [
        -136,
        -136,
        -136,
        -136,
        -24808,
        -21904,
        -19008,
        -16704,
        -14984,
        -13512,
        -12280,
        -11192,
        -10232,
        -9360,
        -8576,
        -7856,
        -7192,
        -6576,
        -6000,
        -5456,
        -4944,
        -4464,
        -4008,
        -3576,
        -3168,
        -2776,
        -2400,
        -2032,
        -1688,
        -1360,
        -1040,
        -728,
        24808,
        21904,
        19008,
        16704,
        14984,
        13512,
        12280,
        11192,
        10232,
        9360,
        8576,
        7856,
        7192,
        6576,
        6000,
        5456,
        4944,
        4464,
        4008,
        3576,
        3168,
        2776,
        2400,
        2032,
        1688,
        1360,
        1040,
        728,
        432,
        136,
        -432,
        -136,
    ],
    dtype=_I64,
)
_IHN = np.array([0, 1, 0], dtype=_I64)
_IHP = np.array([0, 3, 2], dtype=_I64)
_WH = np.array([0, -214, 798], dtype=_I64)
_RH2 = np.array([2, 1, 2, 1], dtype=_I64)
_BIG = 1 << 40  # a threshold no magnitude reaches: pads the one high-band level to the low band's 29


def _build_tables() -> tuple[NDArray[np.int64], ...]:
    """Tables shared by both bands, so one step handles low and high rows alike.

    A quantised code is looked up at ``band * 64 + (32 if e < 0 else 0) + level``: ``CODE`` gives the
    transmitted bits (ilow or ihigh), ``QMUL`` the inverse-quantiser multiplier (qm4 or qm2, blocks
    2L/2H), ``LOGSTEP`` the scale-factor step (wl[rl42] or wh[rh2], blocks 3L/3H). ``DET`` maps the
    log scale factor ``nb`` (offset by 18433 for the high band) to ``det`` (blocks SCALEL/SCALEH).
    """
    code = np.zeros(128, _I64)
    code[0:32] = _ILP
    code[32:64] = _ILN
    code[64:67] = _IHP
    code[96:99] = _IHN
    qmul = np.concatenate([_QM4[code[:64] >> 2], _QM2[code[64:] & 3]])
    logstep = np.concatenate([_WL[_RL42[code[:64] >> 2]], _WH[_RH2[code[64:] & 3]]])
    nb_low = np.arange(18433, dtype=_I64)
    nb_high = np.arange(22529, dtype=_I64)
    det = []
    for nb, base in ((nb_low, 8), (nb_high, 10)):
        wd1 = _ILB[(nb >> 6) & 31]
        wd2 = base - (nb >> 11)
        det.append(np.where(wd2 < 0, wd1 << np.maximum(-wd2, 0), wd1 >> np.maximum(wd2, 0)) << 2)
    thresholds = np.full((2, 29), _BIG, _I64)
    thresholds[0] = _Q6[1:30]
    thresholds[1, 0] = 564
    return code, qmul, logstep, np.concatenate(det), thresholds


_CODE, _QMUL, _LOGSTEP, _DET, _THRESH = _build_tables()
_NB_HIGH_OFFSET = 18433
# Decoder tables: entries 0-15 by ilow >> 2 (blocks 2L/3L), 16-19 by ihigh (blocks 2H/3H).
_DEC_QMUL = np.concatenate([_QM4, _QM2])
_DEC_LOGSTEP = np.concatenate([_WL[_RL42], _WH[_RH2]])


def _sat(x: NDArray[np.int64]) -> NDArray[np.int64]:
    # np.minimum/np.maximum: np.clip costs several times more on the small per-step arrays.
    return np.minimum(np.maximum(x, -32768), 32767)


class _Bands:
    """ADPCM state of both sub-bands of every channel: row ``i`` is a low band, ``channels + i`` a high band.

    Signals are kept in the form block 4 consumes them: the reconstructed signal and the quantised
    differences doubled and saturated (``rr``, ``dd``), the partial reconstruction by its sign only.
    """

    def __init__(self, channels: int) -> None:
        rows = 2 * channels
        high = np.arange(rows) >= channels
        self.s = np.zeros(rows, _I64)
        self.sz = np.zeros(rows, _I64)
        self.nb = np.zeros(rows, _I64)
        self.det = np.where(high, 8, 32).astype(_I64)
        self.rr1 = np.zeros(rows, _I64)
        self.rr2 = np.zeros(rows, _I64)
        self.psg1 = np.zeros(rows, _I64)
        self.psg2 = np.zeros(rows, _I64)
        self.a1 = np.zeros(rows, _I64)
        self.a2 = np.zeros(rows, _I64)
        self.dd = np.zeros((rows, 6), _I64)  # lags 1..6
        self.b = np.zeros((rows, 6), _I64)
        self.nb_max = np.where(high, 22528, 18432).astype(_I64)
        self.nb_offset = np.where(high, _NB_HIGH_OFFSET, 0).astype(_I64)
        self.code_base = np.where(high, 64, 0).astype(_I64)
        self.thresholds = _THRESH[high.astype(np.intp)]

    def adapt(self, log_step: NDArray[np.int64], dq: NDArray[np.int64]) -> None:
        """Scale-factor update (blocks 3L/3H) then predictor update (block 4) for every row."""
        nb = np.minimum(np.maximum(((self.nb * 127) >> 7) + log_step, 0), self.nb_max)
        self.nb = nb
        self.det = _DET[nb + self.nb_offset]
        # RECONS and PARREC: only 2 * r (saturated) and the sign of p are ever used.
        sg0 = (self.sz + dq) >> 63
        rr0 = _sat((self.s + dq) << 1)
        # UPPOL2
        eq1 = sg0 == self.psg1
        a1, a2 = self.a1, self.a2
        wd1 = _sat(a1 << 2)
        wd2 = np.minimum(np.where(eq1, -wd1, wd1), 32767)
        wd3 = (wd2 >> 7) + np.where(sg0 == self.psg2, 128, -128) + ((a2 * 32512) >> 15)
        ap2 = np.minimum(np.maximum(wd3, -12288), 12288)
        # UPPOL1 (|192 + a1 * 32640 / 32768| stays inside int16, so no saturation is needed)
        ap1 = np.where(eq1, 192, -192) + ((a1 * 32640) >> 15)
        lim = 15360 - ap2
        ap1 = np.minimum(np.maximum(ap1, -lim), lim)
        # UPZERO: a coefficient moves towards the sign agreement of its lagged difference and dq.
        dd, b = self.dd, self.b
        step = np.where(dq == 0, 0, 128)[:, None]
        same = (dd ^ dq[:, None]) >= 0
        b = _sat(np.where(same, step, -step) + ((b * 32640) >> 15))
        # DELAYA
        dd[:, 1:] = dd[:, :-1]
        dd[:, 0] = _sat(dq << 1)
        self.b = b
        self.psg2, self.psg1 = self.psg1, sg0
        self.rr2, self.rr1 = self.rr1, rr0
        self.a1, self.a2 = ap1, ap2
        # FILTEP, FILTEZ, PREDIC
        sp = _sat(((ap1 * rr0) >> 15) + ((ap2 * self.rr2) >> 15))
        self.sz = _sat(((b * dd) >> 15).sum(axis=1))
        self.s = _sat(sp + self.sz)


def _check_pcm(pcm: NDArray[np.int16], channels: int) -> NDArray[np.int16]:
    if pcm.dtype != np.int16:
        raise TypeError(f"G.722 encodes int16 samples, got {pcm.dtype}")
    if pcm.ndim != 2 or pcm.shape[0] != channels:
        raise ValueError(f"expected a ({channels}, samples) array, got shape {pcm.shape}")
    if pcm.shape[1] % 2:
        raise ValueError(f"G.722 needs an even number of samples, got {pcm.shape[1]}")
    return pcm


class G722Encoder:
    """64 kbit/s G.722 encoder for ``channels`` independent streams at 16 kHz."""

    def __init__(self, channels: int = 1) -> None:
        if channels < 1:
            raise ValueError("channels must be at least 1")
        self.channels = channels
        self._bands = _Bands(channels)
        self._history = np.zeros((channels, 22), _I64)  # the last 22 input samples, oldest first

    def encode(self, pcm16k: NDArray[np.int16]) -> NDArray[np.uint8]:
        """Encode ``(channels, n)`` int16 samples at 16 kHz into ``(channels, n // 2)`` octets."""
        _check_pcm(pcm16k, self.channels)
        c, n = pcm16k.shape
        pairs = n // 2
        x = np.concatenate([self._history, pcm16k.astype(_I64)], axis=1)
        self._history = x[:, -22:].copy()
        # Transmit QMF: output k sees x[2k .. 2k+23]; even taps on the odd-indexed samples.
        frames = np.lib.stride_tricks.sliding_window_view(x, 24, axis=1)[:, 0 : 2 * pairs : 2]
        sumodd = frames[:, :, 0::2] @ _QMF
        sumeven = frames[:, :, 1::2] @ _QMF[::-1]
        xlow = (sumeven + sumodd) >> 14
        xhigh = (sumeven - sumodd) >> 14
        x_bands = np.concatenate([xlow, xhigh])  # (2 * channels, pairs), low bands first
        codes = np.empty((2 * c, pairs), _I64)
        bands = self._bands
        thresholds = bands.thresholds
        code_base = bands.code_base
        for k in range(pairs):
            det = bands.det
            e = _sat(x_bands[:, k] - bands.s)  # SUBTRA
            neg = e >> 63
            # QUANTL/QUANTH: the level is 1 + how many decision thresholds the magnitude reaches.
            level = ((e ^ neg)[:, None] >= ((thresholds * det[:, None]) >> 12)).sum(axis=1)
            index = code_base + (neg & 32) + level + 1
            codes[:, k] = _CODE[index]
            dq = (det * _QMUL[index]) >> 15  # INVQAL / INVQAH
            bands.adapt(_LOGSTEP[index], dq)
        out = ((codes[c:] << 6) | codes[:c]).astype(np.uint8)
        return out


class G722Decoder:
    """64 kbit/s G.722 decoder for ``channels`` independent streams, giving 16 kHz int16 audio."""

    def __init__(self, channels: int = 1) -> None:
        if channels < 1:
            raise ValueError("channels must be at least 1")
        self.channels = channels
        self._bands = _Bands(channels)
        self._history = np.zeros((channels, 22), _I64)  # the last 11 (low+high, low-high) pairs

    def decode(self, octets: NDArray[np.uint8]) -> NDArray[np.int16]:
        """Decode ``(channels, m)`` octets into ``(channels, 2 * m)`` int16 samples at 16 kHz."""
        if octets.dtype != np.uint8:
            raise TypeError(f"G.722 decodes uint8 octets, got {octets.dtype}")
        if octets.ndim != 2 or octets.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, octets) array, got shape {octets.shape}")
        c, m = octets.shape
        codes = octets.astype(_I64)
        low6 = codes & 0x3F
        ihigh = (codes >> 6) & 0x03
        # Low rows are indexed by the 4 most significant bits of ilow, high rows by 16 + ihigh.
        index = np.concatenate([low6 >> 2, ihigh + 16], axis=0)
        qmul = _DEC_QMUL[index]
        logstep = _DEC_LOGSTEP[index]
        # Reconstruction multipliers: qm6 for the 6-bit low band (INVQBL), qm2 for the high band.
        rmul = np.concatenate([_QM6[low6], _QM2[ihigh]], axis=0)
        recon = np.empty((2 * c, m), _I64)
        bands = self._bands
        for k in range(m):
            det = bands.det
            recon[:, k] = ((det * rmul[:, k]) >> 15) + bands.s  # RECONS
            dq = (det * qmul[:, k]) >> 15  # INVQAL / INVQAH
            bands.adapt(logstep[:, k], dq)
        rlow = recon[:c]
        rhigh = recon[c:]
        np.clip(rlow, -16384, 16383, out=rlow)
        np.clip(rhigh, -16384, 16383, out=rhigh)
        # Receive QMF over the interleaved (rlow + rhigh, rlow - rhigh) sequence.
        y = np.empty((c, 2 * m), _I64)
        y[:, 0::2] = rlow + rhigh
        y[:, 1::2] = rlow - rhigh
        x = np.concatenate([self._history, y], axis=1)
        self._history = x[:, -22:].copy()
        frames = np.lib.stride_tricks.sliding_window_view(x, 24, axis=1)[:, 0 : 2 * m : 2]
        xout2 = frames[:, :, 0::2] @ _QMF
        xout1 = frames[:, :, 1::2] @ _QMF[::-1]
        out = np.empty((c, 2 * m), np.int16)
        out[:, 0::2] = _sat(xout1 >> 11)
        out[:, 1::2] = _sat(xout2 >> 11)
        return out
