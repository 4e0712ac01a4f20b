"""The course's experiments: a tiny language model, an offline corpus, toy tasks, the studies
(train short, test long; RoPE scaling) and the benchmarks that notebooks 06-08 report."""
