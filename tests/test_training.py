"""The shared training loop and its batch-wise augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deltabench.training import accuracy, augment_batch, even_batches, shifted_crops


def test_translation_moves_each_image_by_at_most_t_pixels():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 4] = 1.0
    out = augment_batch(x, translate=2, hflip=False, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    positions = out[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 8, positions % 8
    assert ((rows - 3).abs() <= 2).all() and ((cols - 4).abs() <= 2).all()
    assert (out.flatten(1).sum(1) == 1).all()  # the pixel never falls off at t=2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # shifts differ across the batch


def test_the_gather_used_on_a_gpu_gives_the_cpus_per_shift_slices():
    x = torch.rand(300, 3, 10, 12, generator=torch.Generator().manual_seed(1))
    sliced = augment_batch(x, translate=3, hflip=False, generator=torch.Generator().manual_seed(5))
    gen, span = torch.Generator().manual_seed(5), 7  # the same draws as augment_batch's
    shifts = torch.randint(0, span, (300,), generator=gen) * span
    shifts += torch.randint(0, span, (300,), generator=gen)
    gathered = shifted_crops(F.pad(x, (3, 3, 3, 3)), shifts, span, 10, 12)
    assert torch.equal(gathered, sliced) and not torch.equal(gathered, x)


def test_flip_mirrors_about_half_the_batch():
    x = torch.arange(8.0).view(1, 1, 1, 8).repeat(400, 1, 1, 1)
    out = augment_batch(x, translate=0, hflip=True, generator=torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 7).float().mean()
    assert 0.4 < flipped < 0.6
    assert ((out[:, 0, 0, 0] == 0) | (out[:, 0, 0, 0] == 7)).all()


def test_training_is_reproducible_with_a_seed(digits):
    from conftest import make_trainer

    a = make_trainer(digits, seed=3).fit_new(digits.train.subset(range(300)), epochs=1)
    b = make_trainer(digits, seed=3).fit_new(digits.train.subset(range(300)), epochs=1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_even_batches_cover_a_pass_once_in_near_equal_sizes():
    order = torch.randperm(1153, generator=torch.Generator().manual_seed(0))
    batches = even_batches(order, 128)
    assert len(batches) == 10 and {len(b) for b in batches} == {115, 116}
    assert torch.equal(torch.cat(batches), order)
    assert [len(b) for b in even_batches(torch.arange(256), 128)] == [128, 128]
    assert even_batches(torch.arange(0), 128) == ()


def test_a_set_one_past_a_batch_multiple_trains_as_well_as_the_rest(digits):
    """1,153 = 9 x 128 + 1 examples: a plain cut ends every epoch on a 1-example batch, whose batch-norm
    statistics overwrite the running estimates (this model lost ~20 points of accuracy that way)."""
    from conftest import make_trainer

    model = make_trainer(digits, seed=0).fit_new(digits.train.subset(range(1153)))
    assert accuracy(model, digits.test) >= 0.95
