"""Fair the other way: every right answer passes, whatever its order of operations.

Beside the wrong-implementation suites (test_graders_NN.py), this one feeds every grader at
least three correct answers written as Hugging Face, Meta, GPT-J, the PyTorch tutorial, the
ALiBi and YaRN authors, numpy, einsum, F.scaled_dot_product_attention, float64 or plain
Python loops would write them (tests/correct_variants_a.py, _b.py: none imports posenc).
"""

import correct_variants_a as a
import correct_variants_b as b
import correct_variants_nb03 as nb03
import correct_variants_nb04 as nb04
import correct_variants_nb08 as nb08
import pytest
import test_graders_10 as nb10

from posenc.grading import EXERCISES, run_cases
from posenc.grading.nb09_interview import DRILLS

VARIANTS = {
    "self_attention": [
        a.self_attention_annotated,
        a.self_attention_sdpa,
        a.self_attention_einsum64,
        a.self_attention_numpy,
    ],
    "permutation_equivariance_gap": [a.gap_index_select, a.gap_numpy, a.gap_tensor],
    "embed_with_positions": [a.embed_gpt2, a.embed_index_select, a.embed_one_hot],
    "max_usable_length": [a.length_shape, a.length_len, a.length_size],
    "sinusoidal_encoding": [
        a.sinusoidal_pytorch_tutorial,
        a.sinusoidal_d2l,
        a.sinusoidal_numpy64,
        a.sinusoidal_loops,
    ],
    "sinusoidal_offset_matrix": [a.offset_loops, a.offset_block_diag, a.offset_numpy],
    "relative_dot_product_curve": [a.curve_cos_sum, a.curve_numpy, a.curve_table_dots],
    "t5_relative_bucket": [a.t5_hf, a.t5_numpy, a.t5_loops],
    "relative_bias_matrix": [a.bias_matrix_hf_cache, a.bias_matrix_one_hot, a.bias_matrix_loops],
    "rope_frequencies": [a.freq_hf, a.freq_exp_log, a.freq_numpy64],
    "apply_rope": [a.rope_hf, a.rope_half_complex, a.rope_half_float64, a.rope_half_einsum],
    "apply_rope_interleaved": [a.rope_meta, a.rope_gptj, a.rope_interleaved_numpy],
    "rope_attention": [a.rope_attention_hf, a.rope_attention_sdpa, a.rope_attention_float64],
    "alibi_slopes": [b.slopes_authors, b.slopes_bloom, b.slopes_numpy],
    "alibi_bias": [b.alibi_bias_fairseq, b.alibi_bias_loops, b.alibi_bias_numpy],
    "attention_with_alibi": [
        b.alibi_attention_sdpa,
        b.alibi_attention_manual,
        b.alibi_attention_float64,
    ],
    "perplexity_from_losses": [b.ppl_math, b.ppl_tensor, b.ppl_numpy],
    "position_buckets": [b.buckets_loop, b.buckets_numpy, b.buckets_tensors],
    "best_extrapolator": [b.best_min_ratio, b.best_sorted, b.best_loop],
    "rope_bytes_moved": [b.bytes_element_size, b.bytes_finfo, b.bytes_table],
    "attention_flops": [b.flops_formula, b.flops_two_products, b.flops_float],
    "rope_cached": [b.cached_hf, b.cached_float32, b.cached_float64],
    "linear_scaled_frequencies": [b.linear_hf, b.linear_positions, b.linear_numpy],
    "ntk_scaled_base": [b.ntk_python, b.ntk_numpy, b.ntk_tensor],
    "dynamic_ntk_base": [b.dynamic_hf, b.dynamic_max, b.dynamic_numpy],
    "yarn_frequencies": [b.yarn_authors, b.yarn_numpy, b.yarn_wavelengths],
    "llama3_frequencies": [b.llama3_meta, b.llama3_hf, b.llama3_numpy],
}
VARIANTS.update(  # notebook 10's, written beside its wrong-answer tests
    apply_partial_rope=[nb10.partial_hf, nb10.partial_neox, nb10.partial_complex],
    mrope_position_ids=[nb10.ids_loop, nb10.ids_meshgrid, nb10.ids_numpy],
    apply_mrope=[nb10.mrope_hf, nb10.mrope_hf_old, nb10.mrope_gather],
    mla_scores_absorbed=[nb10.mla_einsum, nb10.mla_loop, nb10.mla_concat],
)
VARIANTS["shaw_relative_attention"] = [  # notebook 03's Shaw exercise
    nb03.shaw_tensor2tensor,
    nb03.shaw_loops,
    nb03.shaw_numpy,
    nb03.shaw_gather,
]
VARIANTS.update(  # notebook 08's YaRN ramp and critical dimension
    yarn_ramp=[nb08.ramp_hf, nb08.ramp_authors, nb08.ramp_numpy],
    critical_dim=[nb08.critical_liu, nb08.critical_loop, nb08.critical_numpy],
)
VARIANTS.update(  # notebook 04's decoding step with a KV cache
    rope_decode_step=[
        nb04.decode_hf_dynamic_cache,
        nb04.decode_meta_llama,
        nb04.decode_numpy64,
        nb04.decode_einsum_rotation_matrix,
    ],
)
for _drill, _source in DRILLS.items():
    VARIANTS[_drill] = VARIANTS[_source]

CASES = [(name, fn) for name, fns in VARIANTS.items() for fn in fns]


def test_every_exercise_has_three_correct_variants():
    assert set(VARIANTS) == set(EXERCISES)
    assert all(len(fns) >= 3 for fns in VARIANTS.values())


@pytest.mark.parametrize("name, fn", CASES, ids=[f"{n}-{f.__name__}" for n, f in CASES])
def test_correct_variant_passes(name, fn):
    result = run_cases(name, fn)
    assert result.passed, f"{name}: {fn.__name__} ({fn.__doc__}) failed: {result.hint}"
    assert result.n_passed == result.n_total
