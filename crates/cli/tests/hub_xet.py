"""An upload of a large file with hf_xet installed and HF_HUB_DISABLE_XET unset: the
client tries Xet storage, which this hub does not speak; the error must say what to set."""

import os
import sys
import tempfile

from huggingface_hub import HfApi

api = HfApi(endpoint=os.environ["HF_ENDPOINT"], token=os.environ["HUB_TOKEN"])
repo_id = f"{os.environ['HUB_NAMESPACE']}/xet-{os.getpid()}"
api.create_repo(repo_id)
try:
    # From a file on disk: the client sends a buffer in memory over plain HTTP anyway.
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(os.urandom(11 * 1024 * 1024))
        f.flush()
        api.upload_file(path_or_fileobj=f.name, path_in_repo="big.bin", repo_id=repo_id)
except Exception as e:  # noqa: BLE001
    print(f"refused: {e}")
    sys.exit(0)
print("the upload went through Xet?!")
sys.exit(1)
