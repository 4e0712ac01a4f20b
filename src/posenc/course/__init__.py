"""The course's machinery: notebook tools (solutions → student versions), ``posenc doctor``,
the interview bank, plots and widget explorers, and the ``posenc`` command line."""
