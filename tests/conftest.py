import sys
from pathlib import Path

# The bidsport package lives in scripts/ (installed editable by .ci/run; this
# keeps the tests working from a plain checkout too).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
