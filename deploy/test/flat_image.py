"""Cache a stand-in image as one flat filesystem tarball plus its config, and bring it back.

    python3 flat_image.py save IMAGE PATH   # PATH.tar (docker export) + PATH.json (its Config)
    python3 flat_image.py load PATH IMAGE   # docker import with ENV/ENTRYPOINT/CMD/... restored

Why not `docker save`/`docker load`: under the vfs storage driver every layer is a full copy of
the ones below, so loading five images of four layers each wrote ~10 GB and took minutes; a flat
image is one layer, written once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def save(image: str, path: Path) -> None:
    cid = subprocess.run(["docker", "create", image], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        with open(f"{path}.tar.part", "wb") as out:
            subprocess.run(["docker", "export", cid], stdout=out, check=True)
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True, check=False)
    config = subprocess.run(["docker", "image", "inspect", "-f", "{{json .Config}}", image],
                            capture_output=True, text=True, check=True).stdout
    Path(f"{path}.json").write_text(config)
    Path(f"{path}.tar.part").rename(f"{path}.tar")


def changes(config: dict) -> list[str]:
    """`docker import -c` instructions that give the flat image the original's config."""
    out = [f"ENV {e.split('=', 1)[0]}={json.dumps(e.split('=', 1)[1])}"
           for e in config.get("Env") or []]
    for key, instr in (("Entrypoint", "ENTRYPOINT"), ("Cmd", "CMD")):
        if config.get(key):
            out.append(f"{instr} {json.dumps(config[key])}")
    if config.get("WorkingDir"):
        out.append(f"WORKDIR {config['WorkingDir']}")
    out += [f"EXPOSE {port}" for port in config.get("ExposedPorts") or {}]
    out += [f"VOLUME {json.dumps([vol])}" for vol in config.get("Volumes") or {}]
    # `docker import` takes no STOPSIGNAL: compose.standins.yml sets postgres' (SIGINT).
    return out


def load(path: Path, image: str) -> None:
    config = json.loads(Path(f"{path}.json").read_text())
    args = [a for c in changes(config) for a in ("-c", c)]
    subprocess.run(["docker", "import", *args, f"{path}.tar", image], capture_output=True,
                   check=True)


if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    if cmd == "save":
        save(a, Path(b))
    elif cmd == "load":
        load(Path(a), b)
    else:
        raise SystemExit(f"usage: {__doc__}")
