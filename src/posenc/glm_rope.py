"""GLM's 2-D RoPE (Du et al., 2022; ChatGLM-6B) and GLM-4's half rotary.

GLM fills a blank: the prompt (with a [gMASK] token at its end) is read bidirectionally, then
the answer is generated after it. Each token gets *two* position ids:

* position id: its index in the prompt; every generated token takes the id of [gMASK]
  (the place in the prompt that the answer fills);
* block position id: 0 in the prompt, 1, 2, … within the generated span.

ChatGLM-6B splits each head in two halves and runs ordinary RoPE on each: the first half
turned by the position id, the second by the block position id. ChatGLM2/3 and GLM-4 dropped
the second id: 1-D positions, RoPE on the first half of each head only (partial rotary 0.5),
in the interleaved layout (pairs (x[2i], x[2i+1])).
"""

from __future__ import annotations

import torch
from torch import Tensor

from posenc.rope import apply_rope


def glm_2d_position_ids(prompt_len: int, generated: int) -> Tensor:
    """(2, prompt_len + generated): position ids and block position ids, [gMASK] last in the
    prompt (at prompt_len − 1)."""
    if prompt_len < 1 or generated < 0:
        raise ValueError(f"need prompt_len >= 1 and generated >= 0, got {prompt_len}, {generated}")
    position = torch.cat([torch.arange(prompt_len), torch.full((generated,), prompt_len - 1)])
    block = torch.cat([torch.zeros(prompt_len, dtype=torch.long), torch.arange(1, generated + 1)])
    return torch.stack([position, block])


def apply_glm_2d_rope(x: Tensor, position_ids: Tensor, *, base: float = 10000.0) -> Tensor:
    """ChatGLM-6B: RoPE on each half of the head, the first by position, the second by block
    position.  x: (..., seq, dim) with dim divisible by 4; position_ids: (2, seq)."""
    if x.shape[-1] % 4:
        raise ValueError(f"2-D RoPE needs dim divisible by 4, got {x.shape[-1]}")
    first, second = x.chunk(2, dim=-1)  # (..., seq, dim/2) each
    return torch.cat(
        [
            apply_rope(first, position_ids[0], base=base),
            apply_rope(second, position_ids[1], base=base),
        ],
        dim=-1,
    )


def apply_glm4_rope(x: Tensor, positions: Tensor, *, base: float = 10000.0) -> Tensor:
    """GLM-4 / ChatGLM2: interleaved RoPE on the first half of each head, the rest untouched."""
    return apply_rope(x, positions, base=base, layout="interleaved", rotary_dim=x.shape[-1] // 2)
