import sys
from pathlib import Path

# The kiosk harness is shared by the tests in this folder.
sys.path.insert(0, str(Path(__file__).parent))
