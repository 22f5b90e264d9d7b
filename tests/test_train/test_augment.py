"""DiffAugment as published (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py): the
numbers below are the reference's, worked out by hand from its code at 32 x 32."""

import torch

from train.augment import cutout, diff_augment, translation

R, N = 32, 4000


def test_cutout_erases_16x16_at_32px_placed_like_the_reference():
    gen = torch.Generator().manual_seed(0)
    out = cutout(torch.ones(N, 3, R, R), gen, N, slice(None))
    erased = (out[:, 0] == 0)
    area = erased.sum(dim=(1, 2))
    # A 16 x 16 square (not 15 x 15), cut by the border when its centre row/column is < 8 or > 24.
    assert area.max() == 256 and (area == 256).float().mean() > 0.2
    rows = erased.any(dim=2)                                  # (N, R): the rows it covers
    first = rows.float().argmax(dim=1)
    last = R - 1 - rows.flip(1).float().argmax(dim=1)
    full = (last - first + 1) == 16
    # Centre offsets o = 0..32 (33 values): the square covers o - 8 .. o + 7, so fully inside
    # for o = 8..24, i.e. a first row of 0..16, each equally likely (17 of 33 offsets).
    assert set(first[full].tolist()) == set(range(17)) and abs(full.float().mean() - 17 / 33) < 0.03
    assert torch.equal(out[:, 1:], out[:, :1].expand(-1, 2, -1, -1))   # every channel alike


def test_translation_shifts_by_whole_pixels_uniform_in_minus4_to_4_at_32px():
    gen = torch.Generator().manual_seed(1)
    x = torch.zeros(N, 1, R, R)
    x[:, 0, 16, 16] = 1.0                                     # one marked pixel
    out = translation(x, gen, N, slice(None))
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(N))  # moved whole, never blurred or lost
    where = out[:, 0].flatten(1).argmax(dim=1)
    dy, dx = 16 - where // R, 16 - where % R                  # out[i] = x[i + dy]
    for d in (dy, dx):
        counts = torch.bincount(d + 4, minlength=9)
        assert len(counts) == 9 and counts.min() > 0                 # exactly -4 .. 4 ...
        assert ((counts.float() / N - 1 / 9).abs() < 0.025).all()    # ... each 1/9 of the time
    assert (dy != dx).any()                                   # the two axes drawn apart


def test_translation_fills_with_zeros_and_passes_gradients():
    gen = torch.Generator().manual_seed(2)
    x = torch.ones(64, 3, R, R, requires_grad=True)
    out = translation(x, gen, 64, slice(None))
    empty_rows = (out[:, 0] == 0).all(dim=2).sum(dim=1)       # rows shifted in from outside
    empty_cols = (out[:, 0] == 0).all(dim=1).sum(dim=1)
    assert empty_rows.max() <= 4 and empty_cols.max() <= 4 and (empty_rows + empty_cols).max() > 0
    out.sum().backward()
    assert x.grad is not None and x.grad.sum() == out.detach().sum()


def test_a_global_batch_is_augmented_alike_in_one_process_or_sliced():
    x = torch.randn(8, 3, R, R)
    whole = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(3), 8, slice(None))
    half = diff_augment(x[4:], "color,translation,cutout", torch.Generator().manual_seed(3), 8, slice(4, 8))
    assert torch.allclose(whole[4:], half)
