"""The real huggingface_hub client (from PyPI) against a live aifactory: create, upload
(inline and through Git LFS), list, download, snapshot, and the client's own errors for
missing, non-public and restricted repositories. Run by crates/cli/tests/hub.rs with
HF_ENDPOINT, HUB_TOKEN (a member of the owning organisation), HUB_OTHER_TOKEN (a member of
another one) and HUB_NAMESPACE set. Exits non-zero at the first failed check."""

import atexit
import json
import os
import pathlib
import shutil
import sys
import tempfile
import urllib.request

from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

endpoint = os.environ["HF_ENDPOINT"]
token = os.environ["HUB_TOKEN"]
other = os.environ["HUB_OTHER_TOKEN"]
namespace = os.environ["HUB_NAMESPACE"]
suffix = str(os.getpid())
checks = 0


def check(ok, what):
    global checks
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def raises(kind, what, f):
    try:
        f()
    except kind:
        check(True, what)
        return
    except Exception as e:  # noqa: BLE001 - the wrong exception is a failure too
        check(False, f"{what}: raised {type(e).__name__}: {e}")
    check(False, f"{what}: raised nothing")


work = pathlib.Path(tempfile.mkdtemp(prefix="aifactory-hf-"))
atexit.register(shutil.rmtree, work, ignore_errors=True)  # its caches hold ~140 MB
api = HfApi(endpoint=endpoint, token=token)

for repo_type in ["model", "dataset"]:
    repo_id = f"{namespace}/arm-{repo_type}-{suffix}"
    url = api.create_repo(repo_id, repo_type=repo_type)
    check(url.repo_id == repo_id, f"create_repo answers the repo's URL: {url}")
    raises(Exception, "creating it twice fails", lambda: api.create_repo(repo_id, repo_type=repo_type))
    api.create_repo(repo_id, repo_type=repo_type, exist_ok=True)

    card = b"---\nlicense: apache-2.0\n---\n# Arm policy\nA test card.\n"
    api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=repo_id, repo_type=repo_type)

    folder = work / f"upload-{repo_type}"
    (folder / "data" / "nested").mkdir(parents=True)
    small = {"data/a.txt": b"alpha\n", "data/nested/b.csv": b"x,y\n1,2\n", "empty.txt": b""}
    for path, content in small.items():
        (folder / path).write_bytes(content)
    big = os.urandom(11 * 1024 * 1024)  # over 10 MiB: uploaded through Git LFS
    (folder / "weights.bin").write_bytes(big)
    info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type, commit_message="add data")
    check(len(info.oid) == 40, f"a commit id of 40 hex digits: {info.oid}")

    files = sorted(api.list_repo_files(repo_id, repo_type=repo_type))
    expected = sorted([".gitattributes", "README.md", "weights.bin", *small])
    check(files == expected, f"list_repo_files: {files} != {expected}")

    repo = api.repo_info(repo_id, repo_type=repo_type, files_metadata=True)
    check(repo.sha == info.oid, f"repo_info's sha is the last commit: {repo.sha} != {info.oid}")
    sizes = {s.rfilename: s.size for s in repo.siblings}
    check(sizes.get("weights.bin") == len(big), f"the large file's size: {sizes}")
    lfs = {s.rfilename: s.lfs for s in repo.siblings}
    check(lfs.get("weights.bin") is not None and lfs["weights.bin"].sha256, f"the large file is an LFS one: {lfs}")

    cache = work / f"cache-{repo_type}"
    got = hf_hub_download(repo_id, "data/a.txt", repo_type=repo_type, cache_dir=cache, token=token)
    check(pathlib.Path(got).read_bytes() == b"alpha\n", "hf_hub_download of a small file")
    got = hf_hub_download(repo_id, "weights.bin", repo_type=repo_type, cache_dir=cache)
    check(pathlib.Path(got).read_bytes() == big, "hf_hub_download of the large file, without a token (public)")
    got = hf_hub_download(repo_id, "data/a.txt", repo_type=repo_type, revision=info.oid, cache_dir=work / "by-commit")
    check(pathlib.Path(got).read_bytes() == b"alpha\n", "hf_hub_download at a commit id")

    # Over 16 MiB: the multipart LFS transfer (chunk_size, a URL per part, completion).
    huge = os.urandom(18 * 1024 * 1024 + 5)
    api.upload_file(path_or_fileobj=huge, path_in_repo="shards/model-00001.bin", repo_id=repo_id, repo_type=repo_type)
    got = hf_hub_download(repo_id, "shards/model-00001.bin", repo_type=repo_type, cache_dir=cache)
    check(pathlib.Path(got).read_bytes() == huge, "a file uploaded in parts comes back whole")
    card_data = api.repo_info(repo_id, repo_type=repo_type).card_data
    check(card_data is not None and card_data.get("license") == "apache-2.0", f"cardData from the README: {card_data}")

    snap = pathlib.Path(snapshot_download(repo_id, repo_type=repo_type, cache_dir=work / f"snap-{repo_type}"))
    for path, content in {**small, "README.md": card, "weights.bin": big, "shards/model-00001.bin": huge}.items():
        check((snap / path).read_bytes() == content, f"snapshot_download has {path}")

    raises(EntryNotFoundError, "a missing file",
           lambda: hf_hub_download(repo_id, "nope.txt", repo_type=repo_type, cache_dir=work / "missing"))
    raises(RevisionNotFoundError, "a missing revision",
           lambda: hf_hub_download(repo_id, "data/a.txt", repo_type=repo_type, revision="no-such-branch",
                                   cache_dir=work / "missing"))

    # Deleting goes through a commit too.
    api.delete_file("empty.txt", repo_id=repo_id, repo_type=repo_type)
    check("empty.txt" not in api.list_repo_files(repo_id, repo_type=repo_type), "delete_file")

raises(RepositoryNotFoundError, "a repository that does not exist",
       lambda: hf_hub_download(f"{namespace}/no-such-repo", "x", cache_dir=work / "none"))

# Non-public: only the owner's members know it exists.
private_id = f"{namespace}/private-{suffix}"
api.create_repo(private_id, private=True)
api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="s.txt", repo_id=private_id)
got = hf_hub_download(private_id, "s.txt", token=token, cache_dir=work / "private")
check(pathlib.Path(got).read_bytes() == b"secret\n", "a member reads a non-public repository")
raises(RepositoryNotFoundError, "another organisation's member does not see it",
       lambda: hf_hub_download(private_id, "s.txt", token=other, cache_dir=work / "private-other"))
raises(RepositoryNotFoundError, "nor does an anonymous client",
       lambda: hf_hub_download(private_id, "s.txt", token=False, cache_dir=work / "private-anon"))

# Restricted: listed for everyone, read by the owner's members (and those granted access).
restricted_id = f"{namespace}/restricted-{suffix}"
request = urllib.request.Request(
    f"{endpoint}/api/repos/create",
    data=json.dumps({"name": restricted_id, "type": "dataset", "access_rights": "restricted"}).encode(),
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
)
urllib.request.urlopen(request).read()
api.upload_file(path_or_fileobj=b"gated\n", path_in_repo="g.txt", repo_id=restricted_id, repo_type="dataset")
raises(GatedRepoError, "a restricted dataset asks for access",
       lambda: hf_hub_download(restricted_id, "g.txt", repo_type="dataset", token=other, cache_dir=work / "gated"))
got = hf_hub_download(restricted_id, "g.txt", repo_type="dataset", token=token, cache_dir=work / "gated-member")
check(pathlib.Path(got).read_bytes() == b"gated\n", "a member reads a restricted dataset")

# Writing to another organisation's repository is refused.
raises(Exception, "another organisation cannot commit",
       lambda: HfApi(endpoint=endpoint, token=other).upload_file(
           path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=private_id))

print(f"{checks} passed, 0 failed")
