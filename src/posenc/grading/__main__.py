import sys

from posenc.grading.runner import main

sys.exit(main())
