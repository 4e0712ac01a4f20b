"""The look-back task: hiding keys reaches every layer, and never hides the target."""

import torch

from posenc.attention import PositionScheme
from posenc.experiments.toy_tasks import LookbackModel, last_query_accuracy


class CopyFromTwoBack(LookbackModel):
    """A hand-set model whose only way to the answer is the key two places back."""

    def forward(self, ids, positions=None, key_padding_mask=None):
        seen = ids if key_padding_mask is None else ids.masked_fill(~key_padding_mask, 0)
        logits = torch.nn.functional.one_hot(torch.roll(seen, 2, dims=1), 16).float()
        return logits


def test_hidden_offsets_hide_keys_but_never_the_target():
    model = CopyFromTwoBack(PositionScheme())
    assert last_query_accuracy(model, 40) == 1.0
    assert last_query_accuracy(model, 40, hidden_offsets=range(3, 40)) == 1.0  # target kept
    hidden = last_query_accuracy(model, 40, hidden_offsets=range(1, 40), lookback=3)
    assert hidden < 0.2  # with lookback 3, offset 2 is hidden: the copy reads a zeroed key


def test_a_padding_mask_reaches_the_attention_layers():
    torch.manual_seed(0)
    model = LookbackModel(PositionScheme(), num_layers=2, num_heads=2)
    ids = torch.randint(16, (3, 12))
    keep = torch.ones(3, 12, dtype=torch.bool)
    keep[:, 4] = False
    full, masked = model(ids), model(ids, key_padding_mask=keep)
    assert torch.allclose(full[:, :4], masked[:, :4])  # earlier queries never saw key 4
    assert not torch.allclose(full[:, 5:], masked[:, 5:])
