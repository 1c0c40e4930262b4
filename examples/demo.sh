#!/usr/bin/env bash
# The main job of artvc on built-in sample data: a repository, two versions of a small data set,
# log and diff, a checkout of the first version compared byte for byte with the originals, a push to
# a shared folder, and a teammate's clone that checks the versions out with the share gone (offline).
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/artvc-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
say() { printf '\n$ %s\n' "$*"; "$@"; }

python3 - <<'PY'
import os, random
rng = random.Random(7)
for i in range(40):
    folder = os.path.join("data", "train" if i < 30 else "test")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"sample_{i:03d}.csv"), "w") as f:
        f.writelines(f"{rng.random():.6f},{rng.randint(0, 9)}\n" for _ in range(200))
with open("data/weights.bin", "wb") as f:
    f.write(rng.randbytes(3 << 20))
PY

say artvc init
say artvc add data -a animals
say artvc commit -m "first cut of the data set"
sha256sum $(find data -type f | sort) > v0.sha256

python3 - <<'PY'
import os
with open("data/train/sample_000.csv", "a") as f:
    f.write("0.5,5\n")
os.remove("data/test/sample_039.csv")
with open("data/test/sample_040.csv", "w") as f:
    f.write("0.25,2\n")
with open("data/weights.bin", "r+b") as f:
    f.seek(1 << 20)
    f.write(b"fine-tuned")
PY

say artvc status
say artvc commit -m "more samples, fine-tuned weights" --alias best
say artvc log
say artvc diff animals:v0 animals:best
say artvc checkout animals:v0
say sha256sum --quiet -c v0.sha256
test ! -e data/test/sample_040.csv
say artvc status

say artvc remote add share "$work/share"
say artvc push
mkdir "$work/teammate" && cd "$work/teammate"
say artvc clone "$work/share" animals
cd animals
say artvc fetch --all
mv "$work/share" "$work/share-offline"        # the network is gone from here on
say artvc checkout animals:best
say artvc checkout animals:v0
say sha256sum --quiet -c "$work/v0.sha256"
say artvc log
echo
echo "demo OK: two versions committed, v0 checked out byte for byte, pushed to a share, cloned and checked out offline"
