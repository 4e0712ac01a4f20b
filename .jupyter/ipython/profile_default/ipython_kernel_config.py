# Kernel settings for the course: plain (colourless) tracebacks, so that test logs
# and graded reports stay readable.
c = get_config()  # noqa: F821
c.InteractiveShell.colors = "NoColor"
