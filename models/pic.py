"""PIC (Royer et al.): a conditioning CNN g(L) + a conditional PixelCNN over ab at 1/4 resolution.

g(L) is the SmallTrunk of eccv16-small (features at 1/4 resolution). The autoregressive part is
a gated PixelCNN with a vertical stack (sees only rows above) and a horizontal stack (sees the
pixels to the left in the current row plus the vertical stack), so there is no blind spot; every
gated residual block is conditioned on g(L) by 1x1 convolutions. Raster order over pixels; within
a pixel a comes before b: the output is, per pixel, a mixture of K discretized logistics over
(a, b) whose b means are linear in a (PixelCNN++), so p(a, b) = sum_k pi_k p_k(a) p_k(b | a).

ab is discretized at 1 Lab unit over [-110, 110] (221 bins per dimension), the resolution of
`evaluate`'s bits_per_dim; inputs are ab / 110.

`head="factorised"` is the ablation: the same g(L) with a per-pixel mixture head (no masked
autoregressive path; b still linear in a within the pixel).

forward(L) returns the conditioning features g(L) (N, C, h, w): they are computed once per
image and cached; `nll_bits(features, ab)` is the training loss (bits per ab dimension), and
`decode(features, ...)` samples or decodes ab pixel by pixel from those cached features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.base import AB_SCALE, Colorizer
from models.small import SmallTrunk

AB_MAX = 110  # ab bins: integers -110..110 (Lab units)
HALF_BIN = 0.5 / AB_SCALE  # half a 1-Lab-unit bin in the normalised ab / 110 scale
PARAMS_PER_COMPONENT = 6  # logit, mean a, mean b, log scale a, log scale b, coeff b|a
LOG_SCALE_MIN = -7.0
LN2 = math.log(2.0)
MC_SAMPLES = 8  # samples averaged by decode(method="mc")


def discretize(ab: torch.Tensor) -> torch.Tensor:
    """ab in Lab units -> the nearest 1-unit bin, clipped to [-110, 110], in ab / 110 units."""
    return torch.clamp(torch.round(ab), -AB_MAX, AB_MAX) / AB_SCALE


def logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(bin of x) under a logistic(mean, exp(log_scale)) discretized at 1 Lab unit.

    x is a bin centre in ab / 110 units; the bin is [x - h, x + h] with h = 0.5 / 110, and the
    edge bins -110 and 110 take the tails (PixelCNN++). Where the bin mass underflows the
    density times the bin width is used instead.
    """
    log_scale = torch.clamp(log_scale, min=LOG_SCALE_MIN)
    centred = x - mean
    inv_s = torch.exp(-log_scale)
    plus, minus = inv_s * (centred + HALF_BIN), inv_s * (centred - HALF_BIN)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus)
    log_one_minus_cdf_min = -F.softplus(minus)  # log (1 - sigmoid(minus))
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * centred
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid) + math.log(2 * HALF_BIN)
    inner = torch.where(delta > 1e-5, torch.log(torch.clamp(delta, min=1e-12)), log_pdf_mid)
    lo, hi = -1.0 + 1e-6, 1.0 - 1e-6
    return torch.where(x < lo, log_cdf_plus, torch.where(x > hi, log_one_minus_cdf_min, inner))


def split_params(params: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """(N, 6K, h, w) -> logits, mean_a, mean_b, log_s_a, log_s_b, coeff (each (N, K, h, w))."""
    logits, mu_a, mu_b, ls_a, ls_b, coeff = params.split(k, dim=1)
    return logits, mu_a, mu_b, ls_a, ls_b, torch.tanh(coeff)


def mixture_log_prob(params: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """Joint log P(a bin, b bin) per pixel (N, h, w), x = discretized ab / 110 (N, 2, h, w)."""
    logits, mu_a, mu_b, ls_a, ls_b, coeff = split_params(params.float(), k)
    a, b = x[:, :1], x[:, 1:2]
    lp = (
        torch.log_softmax(logits, dim=1)
        + logistic_log_prob(a, mu_a, ls_a)
        + logistic_log_prob(b, mu_b + coeff * a, ls_b)
    )
    return torch.logsumexp(lp, dim=1)


def sample_pixel(
    params: torch.Tensor,
    k: int,
    temperature: float,
    method: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Params (N, 6K) of one pixel -> ab (N, 2) in ab / 110 units, rounded to 1-unit bins.

    method 'sample': a mixture component ~ softmax(logits / T), then a and b (given a) from
    logistics with scales x T; 'mode': the most likely component's means; otherwise ('mean',
    'annealed'): the mixture means (greedy: b's mean uses the decoded a).
    """
    logits, mu_a, mu_b, ls_a, ls_b, coeff = split_params(params.float(), k)  # (N, K) each
    if method == "sample" and temperature > 0:
        t = float(temperature)
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
        gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-10)))
        comp = (logits / t + gumbel).argmax(1, keepdim=True)
        pick = lambda z: z.gather(1, comp)[:, 0]  # noqa: E731
        noise = torch.rand((len(logits), 2), generator=generator, dtype=logits.dtype)
        noise = noise.clamp(1e-5, 1 - 1e-5)
        noise = torch.log(noise) - torch.log1p(-noise)
        a = pick(mu_a) + t * torch.exp(pick(ls_a)) * noise[:, 0]
        a = torch.round(torch.clamp(a, -1, 1) * AB_SCALE) / AB_SCALE
        b = pick(mu_b) + pick(coeff) * a + t * torch.exp(pick(ls_b)) * noise[:, 1]
    elif method in ("mode", "sample"):  # sample at T = 0: the mode component's means
        comp = logits.argmax(1, keepdim=True)
        a = mu_a.gather(1, comp)[:, 0]
        a = torch.round(torch.clamp(a, -1, 1) * AB_SCALE) / AB_SCALE
        b = (mu_b + coeff * a[:, None]).gather(1, comp)[:, 0]
    else:
        pi = torch.softmax(logits, dim=1)
        a = (pi * mu_a).sum(1)
        a = torch.round(torch.clamp(a, -1, 1) * AB_SCALE) / AB_SCALE
        b = (pi * (mu_b + coeff * a[:, None])).sum(1)
    b = torch.round(torch.clamp(b, -1, 1) * AB_SCALE) / AB_SCALE
    return torch.stack([a, b], dim=1)


class ShiftConv(nn.Module):
    """A causal convolution by padding and cropping.

    'v': kernel (k//2, k), sees only rows strictly above; 'hA': kernel (1, k//2), the pixels
    strictly to the left in the row; 'hB': kernel (1, k//2 + 1), the left pixels and itself.
    """

    def __init__(self, cin: int, cout: int, k: int, kind: str):
        super().__init__()
        r = k // 2
        self.kind, self.r = kind, r
        shape = {"v": (r, k), "hA": (1, r), "hB": (1, r + 1)}[kind]
        self.conv = nn.Conv2d(cin, cout, shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        r = self.r
        if self.kind == "v":
            return self.conv(F.pad(x, (r, r, r, 0)))[..., :h, :]
        if self.kind == "hA":
            return self.conv(F.pad(x, (r, 0, 0, 0)))[..., :, :w]
        return self.conv(F.pad(x, (r, 0, 0, 0)))


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, g = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(g)


class GatedBlock(nn.Module):
    """A gated residual block on the vertical and horizontal stacks, conditioned on g(L)."""

    def __init__(self, c: int, cond: int, k: int):
        super().__init__()
        self.v_conv = ShiftConv(c, 2 * c, k, "v")
        self.h_conv = ShiftConv(c, 2 * c, k, "hB")
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.cond_v = nn.Conv2d(cond, 2 * c, 1)
        self.cond_h = nn.Conv2d(cond, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)

    def vertical(self, v: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(new v, the pre-gate vertical features that feed the horizontal stack)."""
        vv = self.v_conv(v) + self.cond_v(cond)
        return v + _gate(vv), vv

    def horizontal(self, h: torch.Tensor, vv: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        hh = self.h_conv(h) + self.v_to_h(vv) + self.cond_h(cond)
        return h + self.h_out(_gate(hh))


class PixelCNNHead(nn.Module):
    """Conditional gated PixelCNN over ab (N, 2, h, w) -> mixture params (N, 6K, h, w)."""

    def __init__(self, cond: int, channels: int = 48, blocks: int = 4, k: int = 3, mix: int = 10):
        super().__init__()
        c = channels
        self.v_in = ShiftConv(3, c, k, "v")
        self.h_in = ShiftConv(3, c, k, "hA")
        self.v_to_h_in = nn.Conv2d(c, c, 1)
        self.blocks = nn.ModuleList(GatedBlock(c, cond, k) for _ in range(blocks))
        self.out = nn.Sequential(nn.ELU(), nn.Conv2d(c, c, 1), nn.ELU(), nn.Conv2d(c, 6 * mix, 1))
        self.reach = (blocks + 1) * (k // 2)  # rows above / columns left that reach an output

    @staticmethod
    def _input(x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:, :1])  # tells real pixels from the zero padding
        return torch.cat([x, ones], dim=1)

    def vertical(self, x: torch.Tensor, cond: torch.Tensor) -> list[torch.Tensor]:
        """The vertical stack: [v0, vv_1, ..., vv_B] (each depends only on rows above)."""
        v = self.v_in(self._input(x))
        outs = [v]
        for block in self.blocks:
            v, vv = block.vertical(v, cond)
            outs.append(vv)
        return outs

    def horizontal(
        self, x: torch.Tensor, vs: list[torch.Tensor], cond: torch.Tensor
    ) -> torch.Tensor:
        h = self.h_in(self._input(x)) + self.v_to_h_in(vs[0])
        for block, vv in zip(self.blocks, vs[1:], strict=True):
            h = block.horizontal(h, vv, cond)
        return self.out(h)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.horizontal(x, self.vertical(x, cond), cond)

    def row_terms(self, vs: list[torch.Tensor], cond: torch.Tensor) -> list[torch.Tensor]:
        """The horizontal stack's inputs that do not depend on the current row's ab (from
        the vertical stack and g(L)), per layer: computed once per row when sampling."""
        terms = [self.v_to_h_in(vs[0])]
        for block, vv in zip(self.blocks, vs[1:], strict=True):
            terms.append(block.v_to_h(vv) + block.cond_h(cond))
        return terms

    def row_sampler(self, n: int, width: int, terms: list[torch.Tensor]) -> _RowSampler:
        """Column-by-column evaluation of the horizontal stack over one row (sampling)."""
        return _RowSampler(self, n, width, terms)

    def horizontal_from(self, x: torch.Tensor, terms: list[torch.Tensor]) -> torch.Tensor:
        """`horizontal` given `row_terms` (the same numbers, fewer operations)."""
        h = self.h_in(self._input(x)) + terms[0]
        for block, term in zip(self.blocks, terms[1:], strict=True):
            h = h + block.h_out(_gate(block.h_conv(h) + term))
        return self.out(h)


class _RowSampler:
    """The horizontal stack of one row, one column at a time: each layer's outputs for the
    columns already sampled are kept, so a new column costs one matrix-vector product per
    layer (the causal 1-D convolutions over the row, written as linear maps of a window)."""

    def __init__(self, head: PixelCNNHead, n: int, width: int, terms: list[torch.Tensor]):
        r = head.h_in.r
        dev = terms[0].device
        self.r = r
        # buffers (n, r + width, C): r zero columns on the left, a window is a flat view
        self.x = torch.zeros(n, width + r, 3, device=dev)  # ab + the ones channel
        self.x[:, r:, 2] = 1.0
        c = head.v_to_h_in.out_channels
        self.h = [torch.zeros(n, width + r, c, device=dev) for _ in range(len(head.blocks) + 1)]

        def window_weight(conv: nn.Conv2d) -> torch.Tensor:  # (cout, cin, 1, kw) -> (kw*cin, cout)
            w = conv.weight[:, :, 0].permute(0, 2, 1)
            return w.reshape(conv.out_channels, -1).t().contiguous()

        # per layer: (window weight, the row's other inputs + bias as (width, n, C'))
        convs = [head.h_in.conv] + [b.h_conv.conv for b in head.blocks]
        self.layers = [
            (window_weight(conv), (t + conv.bias[None, :, None]).permute(2, 0, 1).contiguous())
            for conv, t in zip(convs, terms, strict=True)
        ]
        self.outs = [
            (b.h_out.weight[:, :, 0, 0].t().contiguous(), b.h_out.bias) for b in head.blocks
        ]
        o1, o2 = head.out[1], head.out[3]
        self.head_out = [(o.weight[:, :, 0, 0].t().contiguous(), o.bias) for o in (o1, o2)]

    def params(self, col: int) -> torch.Tensor:
        """Mixture params (n, 6K) at column `col` (every column left of it already set)."""
        r, p = self.r, col + self.r  # p: the column in the padded buffers
        n = len(self.x)
        w, t = self.layers[0]
        h = torch.addmm(t[col], self.x[:, p - r : p].reshape(n, -1), w)
        self.h[0][:, p] = h
        for i, ((w, t), (w_out, b_out)) in enumerate(zip(self.layers[1:], self.outs, strict=True)):
            hh = torch.addmm(t[col], self.h[i][:, p - r : p + 1].reshape(n, -1), w)
            a, g = hh.chunk(2, dim=1)
            h = h + torch.addmm(b_out, torch.tanh(a) * torch.sigmoid(g), w_out)
            self.h[i + 1][:, p] = h
        (w1, b1), (w2, b2) = self.head_out
        return torch.addmm(b2, F.elu(torch.addmm(b1, F.elu(h), w1)), w2)

    def set(self, col: int, ab: torch.Tensor) -> None:
        """Record the sampled ab (n, 2) of column `col`."""
        self.x[:, col + self.r, :2] = ab


class FactorisedHead(nn.Module):
    """The ablation: per-pixel mixture params from g(L) alone (N, 6K, h, w)."""

    def __init__(self, cond: int, channels: int = 64, mix: int = 10):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(cond, c, 3, padding=1),
            nn.ELU(),
            nn.Conv2d(c, c, 1),
            nn.ELU(),
            nn.Conv2d(c, 6 * mix, 1),
        )
        self.reach = 0

    def forward(self, x: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond)


class PIC(Colorizer):
    """PIC: g(L) (SmallTrunk) + an autoregressive ('ar') or factorised mixture head."""

    kind = "pic"
    decode_methods = ("annealed", "mean", "mode")  # and 'sample' / 'mc': colorize --samples
    temperature_methods = ("sample",)  # annealed and mean: the greedy mixture mean

    def __init__(
        self,
        width: float = 0.25,
        head: str = "ar",
        channels: int = 48,
        blocks: int = 4,
        mix: int = 10,
        kernel: int = 3,
        freeze_trunk: bool = False,
    ):
        super().__init__()
        if head not in ("ar", "factorised"):
            raise ValueError(f"pic head must be 'ar' or 'factorised', got {head!r}")
        self.head_kind, self.mix, self.freeze_trunk = head, mix, freeze_trunk
        self.trunk = SmallTrunk(width)
        if freeze_trunk:  # g(L) as initialised (e.g. from eccv16-small): only the head trains
            self.trunk.requires_grad_(False)
        c = self.trunk.out_channels
        self.head = (
            PixelCNNHead(c, channels, blocks, kernel, mix)
            if head == "ar"
            else FactorisedHead(c, channels, mix)
        )

    def train(self, mode: bool = True) -> PIC:
        super().train(mode)
        if self.freeze_trunk:
            self.trunk.eval()  # frozen: batch-norm statistics stay as loaded
        return self

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        """g(L): the conditioning features at 1/4 resolution (cache them for sampling)."""
        if self.freeze_trunk:
            with torch.no_grad():
                return self.trunk(l_norm)
        return self.trunk(l_norm)

    def params(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mixture params given the features and the (teacher-forced) ab / 110 grid."""
        return self.head(x, features)

    def log_prob(self, features: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """log P(ab) per pixel (N, h, w) in nats; ab in Lab units, area-downsampled to the
        features' grid when bigger, then discretized at 1 Lab unit."""
        if ab.shape[-2:] != features.shape[-2:]:
            ab = F.interpolate(ab, size=features.shape[-2:], mode="area")
        x = discretize(ab)
        return mixture_log_prob(self.params(features, x), x, self.mix)

    def nll_bits(self, features: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Negative log2-likelihood per ab dimension, per image (N,)."""
        return -self.log_prob(features, ab).mean((1, 2)) / (2.0 * LN2)

    @torch.inference_mode()
    def generate(
        self,
        features: torch.Tensor,
        temperature: float = 1.0,
        method: str = "mean",
        seed: int | None = 0,
    ) -> torch.Tensor:
        """ab / 110 (N, 2, h, w), pixel by pixel in raster order from cached features.

        The vertical stack runs once per row and the horizontal stack once per pixel, each on
        the window that can reach the current pixel, so a 64x64 grid takes seconds on a CPU.
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # thousands of tiny ops: extra threads only add overhead
        try:
            return self._generate(features.float(), temperature, method, seed)
        finally:
            torch.set_num_threads(threads)

    def _generate(
        self, feats: torch.Tensor, temperature: float, method: str, seed: int | None
    ) -> torch.Tensor:
        n, _, hgt, wid = feats.shape
        gen = None
        if method == "sample":
            gen = torch.Generator(device="cpu").manual_seed(int(seed or 0))
        if self.head_kind == "factorised":
            params = self.head(None, feats).permute(0, 2, 3, 1).reshape(n * hgt * wid, -1)
            ab = sample_pixel(params.cpu(), self.mix, temperature, method, gen)
            return ab.reshape(n, hgt, wid, 2).permute(0, 3, 1, 2).to(feats.device)
        head, reach = self.head, self.head.reach
        x = torch.zeros(n, 2, hgt, wid, device=feats.device)
        for r in range(hgt):
            r0 = max(0, r - reach)
            vs = head.vertical(x[:, :, r0 : r + 1], feats[:, :, r0 : r + 1])
            terms = [
                t[:, :, 0]
                for t in head.row_terms([v[:, :, -1:] for v in vs], feats[:, :, r : r + 1])
            ]
            row = head.row_sampler(n, wid, terms)
            for c in range(wid):
                px = sample_pixel(row.params(c), self.mix, temperature, method, gen)
                row.set(c, px)
                x[:, :, r, c] = px
        return x

    def decode(
        self,
        output: torch.Tensor,
        size: tuple[int, int] | None = None,
        temperature: float = 1.0,
        method: str = "mean",
        seed: int | None = 0,
        **_,
    ) -> torch.Tensor:
        """Cached features -> ab in Lab units (N, 2, h, w), upsampled to `size`. method:
        'mean' / 'annealed' (greedy mixture mean), 'mode', 'sample' (temperature T, seeded),
        or 'mc': the average of MC_SAMPLES seeded samples at T (a Monte Carlo estimate of the
        posterior mean E[ab | L]; deterministic given the seed)."""
        if method == "mc":
            n = len(output)
            many = output.repeat_interleave(MC_SAMPLES, dim=0)
            ab = self.generate(many, temperature, "sample", seed) * AB_SCALE
            ab = ab.reshape(n, MC_SAMPLES, *ab.shape[1:]).mean(1)
        else:
            ab = self.generate(output, temperature, method, seed) * AB_SCALE
        return F.interpolate(ab, size=size, mode="bilinear", align_corners=False) if size else ab

    def load_init(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Initialise from another checkpoint where names and shapes match (a pic checkpoint:
        everything; eccv16-small: the conditioning trunk). Returns the names loaded."""
        own = self.state_dict()
        loaded = {k: v.float() for k, v in state.items() if k in own and own[k].shape == v.shape}
        own.update(loaded)
        self.load_state_dict(own)
        return sorted(loaded)
