import sys
from pathlib import Path

# the test helpers (tests/layouts.py) import as plain modules
sys.path.insert(0, str(Path(__file__).parent))
