"""Unzipped deployment size of each Lambda function: its code plus every layer attached to it.

    .venv/bin/python bench/package_size.py [--build-dir DIR] [--no-reference] [--json PATH]

Without --build-dir it runs `sam build --template-file template.yaml` (the project venv's
`sam`, SAM_CLI_TELEMETRY=0) into a temporary directory. The layers of a function are the
Globals.Function.Layers followed by its own Layers, resolved in the BUILT template to the
built layer directories. Sizes are the bytes of the files as Lambda unpacks them
(MiB = 2**20 bytes; Lambda's limit for code + layers is 250 MiB unzipped).

API functions (SubmitFunction, TasksFunction, any *Authorizer*, and any function with an
Api/HttpApi event) are flagged when over 30 MiB: they answer users synchronously, so their
cold start, which grows with what they carry, is on the request path.

The reference is the "all-in" alternative: the same pins installed into one target for
python3.12 manylinux2014_x86_64 (Powertools, pydantic, openai, google-genai, mcp), i.e.
what every function would carry without the provider split (no anthropic: agentkit
speaks its API over httpx).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from opspawn.build import python312_env

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent
MIB = 1024 * 1024
API_LIMIT_MIB = 30
LAMBDA_LIMIT_MIB = 250
EXPLICIT_API_FUNCTIONS = {"SubmitFunction", "TasksFunction"}
LLM_FUNCTION = "CallModelFunction"
TARGET_FLAGS = [
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    "3.12",
    "--only-binary=:all:",
]
# The all-in reference: these distributions, at the layers' pins or the project venv's.
REFERENCE_DISTS = (
    "aws-lambda-powertools[parser]",
    "pydantic",
    "openai",
    "google-genai",
    "mcp",
)
REQUIREMENT_FILES = (
    ROOT / "layers" / "agentkit" / "requirements.txt",
    ROOT / "layers" / "providers" / "requirements.txt",
)


# --- the built template -------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...)."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)
    return data


def dir_bytes(path: Path) -> tuple[int, int]:
    """(bytes, files) of every regular file under path, symlinks not followed."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size
            files += 1
    return total, files


def top_entries(path: Path, limit: int) -> list[tuple[str, int]]:
    """The largest top-level entries of a layer's python/ dir (packages, .dist-info merged)."""
    base = path / "python" if (path / "python").is_dir() else path
    sizes: dict[str, int] = {}
    for entry in base.iterdir():
        name = entry.name
        if name.endswith((".dist-info", ".libs")):
            name = re.split(r"[-.]", name)[0]
        size = dir_bytes(entry)[0] if entry.is_dir() else entry.lstat().st_size
        sizes[name] = sizes.get(name, 0) + size
    return sorted(sizes.items(), key=lambda item: -item[1])[:limit]


def dist_versions(path: Path) -> dict[str, str]:
    """{normalised distribution name: version} from the *.dist-info dirs of a layer."""
    base = path / "python" if (path / "python").is_dir() else path
    out = {}
    for info in base.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def is_api_function(name: str, props: dict[str, Any]) -> str | None:
    if name in EXPLICIT_API_FUNCTIONS:
        return "API"
    if "authorizer" in name.lower():
        return "authorizer"
    events = props.get("Events") or {}
    if any((e or {}).get("Type") in {"Api", "HttpApi"} for e in events.values()):
        return "API event"
    return None


def analyse(build_dir: Path) -> dict[str, Any]:
    template = load_template(build_dir / "template.yaml")
    resources: dict[str, Any] = template.get("Resources", {})
    global_layers = ((template.get("Globals") or {}).get("Function") or {}).get("Layers") or []

    layers: dict[str, dict[str, Any]] = {}
    for name, res in resources.items():
        if res.get("Type") in {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}:
            props = res.get("Properties") or {}
            uri = props.get("ContentUri") or (props.get("Content") or {}).get("S3Key")
            path = (build_dir / uri) if isinstance(uri, str) else None
            if path is None or not path.is_dir():
                layers[name] = {"path": None, "bytes": None, "files": None, "top": []}
                continue
            size, files = dir_bytes(path)
            layers[name] = {
                "path": str(path),
                "bytes": size,
                "files": files,
                "top": top_entries(path, 8),
                "dists": dist_versions(path),
            }

    functions: dict[str, dict[str, Any]] = {}
    for name, res in resources.items():
        if res.get("Type") not in {"AWS::Serverless::Function", "AWS::Lambda::Function"}:
            continue
        props = res.get("Properties") or {}
        code_uri = props.get("CodeUri")
        code_path = build_dir / code_uri if isinstance(code_uri, str) else None
        code_bytes = dir_bytes(code_path)[0] if code_path and code_path.is_dir() else None
        attached = []
        for ref in [*global_layers, *(props.get("Layers") or [])]:
            if isinstance(ref, dict) and "Ref" in ref:
                attached.append(ref["Ref"])
            else:
                attached.append(f"external:{ref}")
        per_layer = {lay: (layers.get(lay) or {}).get("bytes") for lay in attached}
        known = [b for b in [code_bytes, *per_layer.values()] if b is not None]
        # Lambda unpacks the layers into /opt in order: a later one overwrites the files of
        # a distribution an earlier one also ships.
        shadowed = []
        for i, later in enumerate(attached):
            for earlier in attached[:i]:
                old = (layers.get(earlier) or {}).get("dists") or {}
                new = (layers.get(later) or {}).get("dists") or {}
                for dist in sorted(old.keys() & new.keys()):
                    shadowed.append([dist, earlier, old[dist], later, new[dist]])
        functions[name] = {
            "code_bytes": code_bytes,
            "layers": per_layer,
            "shadowed": shadowed,
            "total_bytes": sum(known),
            "complete": len(known) == 1 + len(per_layer),
            "api": is_api_function(name, props),
        }
    return {"layers": layers, "functions": functions}


# --- sam build and the reference --------------------------------------------------


def sam_build(build_dir: Path) -> float:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PIP"] = f"{sys.executable} -m pip"  # the layer Makefiles install with this pip
    env = python312_env(env)
    sam = BIN / "sam"
    if not sam.exists():
        sys.exit(f"no `sam` next to {sys.executable} (pip install -e '.[dev]')")
    cmd = [str(sam), "build", "--template-file", str(TEMPLATE), "--build-dir", str(build_dir)]
    log(f"$ {' '.join(cmd)}")
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        sys.exit(f"sam build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - t0


def _dist_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9_.-]+)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement


def reference_requirements() -> list[str]:
    pinned: dict[str, str] = {}
    for path in REQUIREMENT_FILES:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                pinned.setdefault(_dist_name(line), line)
    out = []
    for dist in REFERENCE_DISTS:
        name = _dist_name(dist)
        if name in pinned:
            out.append(pinned[name])
            continue
        try:
            out.append(f"{dist}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(dist)
    return out


def reference_size(workdir: Path) -> dict[str, Any]:
    target = workdir / "all-in" / "python"
    requirements = reference_requirements()
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile"]
    cmd += ["--quiet", *TARGET_FLAGS, "--target", str(target), *requirements]
    log(f"reference: pip install --target <tmp> {' '.join(requirements)}")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        return {"requirements": requirements, "error": result.stderr.strip()[-2000:]}
    shutil.rmtree(target / "bin", ignore_errors=True)
    size, files = dir_bytes(target)
    return {
        "requirements": requirements,
        "bytes": size,
        "files": files,
        "top": top_entries(target, 12),
    }


# --- output ------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mib(value: int | None) -> str:
    return "?" if value is None else f"{value / MIB:.2f}"


def render(result: dict[str, Any]) -> str:
    layers, functions = result["layers"], result["functions"]
    layer_names = [n for n in layers if any(n in f["layers"] for f in functions.values())]
    external = sorted({n for f in functions.values() for n in f["layers"] if n not in layers})
    columns = ["function", "code KiB", *layer_names, *external, "total MiB", "flag"]
    rows = []
    for name, fn in functions.items():
        code = fn["code_bytes"]
        cells = [name, "?" if code is None else f"{code / 1024:.1f}"]
        cells += [mib(fn["layers"][n]) if n in fn["layers"] else "-" for n in layer_names]
        cells += ["?" if n in fn["layers"] else "-" for n in external]
        cells.append(mib(fn["total_bytes"]) + ("" if fn["complete"] else "+?"))
        flags = []
        total_mib = fn["total_bytes"] / MIB
        if fn["api"]:
            over = total_mib > API_LIMIT_MIB
            flags.append(
                f"{fn['api']}: {'OVER' if over else 'under'} {API_LIMIT_MIB} MiB"
                + (" <-- !" if over else "")
            )
        if total_mib > LAMBDA_LIMIT_MIB:
            flags.append(f"OVER Lambda's {LAMBDA_LIMIT_MIB} MiB limit")
        cells.append("; ".join(flags))
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    numeric = set(range(1, len(columns) - 1))

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = ["Unzipped size per function (code + each attached layer, MiB unless said):", ""]
    out += [line(columns), "  ".join("-" * w for w in widths), *map(line, rows)]
    out.append("")
    out.append("Layers (unzipped MiB, files; largest top-level entries):")
    for name in layer_names:
        lay = layers[name]
        top = ", ".join(f"{n} {s / MIB:.1f}" for n, s in lay["top"])
        out.append(f"  {name}: {mib(lay['bytes'])} MiB, {lay['files']} files  [{top}]")
    for name in external:
        out.append(f"  {name}: not built here, size unknown")
    for name, fn in functions.items():
        if not fn["shadowed"]:
            continue
        out.append("")
        out.append(f"{name}: distributions in more than one of its layers (the later wins):")
        for dist, earlier, old, later, new in fn["shadowed"]:
            what = "same version" if old == new else "VERSION DIFFERS"
            out.append(f"  {dist}: {earlier} {old} -> {later} {new}  ({what})")
    llm = functions.get(LLM_FUNCTION)
    if llm:
        parts = " + ".join(
            f"{n} {mib(b)}" for n, b in [("code", llm["code_bytes"]), *llm["layers"].items()]
        )
        out.append("")
        out.append(f"{LLM_FUNCTION} total: {mib(llm['total_bytes'])} MiB ({parts})")
    ref = result.get("reference")
    if ref:
        out.append("")
        if "error" in ref:
            out.append(f"All-in reference: pip failed: {ref['error']}")
        else:
            agentkit = result.get("agentkit_bytes") or 0
            all_in = ref["bytes"] + agentkit
            top = ", ".join(f"{n} {s / MIB:.1f}" for n, s in ref["top"])
            out.append(
                f"All-in reference (one layer: {', '.join(ref['requirements'])} + agentkit, "
                "python3.12 manylinux2014_x86_64):"
            )
            out.append(
                f"  {all_in / MIB:.2f} MiB, {ref['files']} files  [{top}]"
                f"  (agentkit source {agentkit / MIB:.2f} MiB)"
            )
            for name, fn in functions.items():
                with_all_in = (fn["code_bytes"] or 0) + all_in
                saved = with_all_in - fn["total_bytes"]
                out.append(
                    f"  {name}: all-in {with_all_in / MIB:.2f} MiB vs split "
                    f"{mib(fn['total_bytes'])} MiB -> saves {saved / MIB:.2f} MiB "
                    f"({100 * saved / with_all_in:.0f}%)"
                )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, help="an existing `sam build` output to measure")
    parser.add_argument("--no-reference", action="store_true", help="skip the all-in reference")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="opspawn-pkgsize-") as tmp:
        work = Path(tmp)
        if args.build_dir:
            build_dir = args.build_dir.resolve()
            if not (build_dir / "template.yaml").is_file():
                parser.error(f"{build_dir} has no template.yaml: not a `sam build` output")
            print(f"build: existing {build_dir}")
        else:
            build_dir = work / "build"
            seconds = sam_build(build_dir)
            print(f"build: sam build into a temp dir ({seconds:.0f} s)")
        result = analyse(build_dir)
        agentkit_dir = None
        for lay in result["layers"].values():
            if lay["path"] and (Path(lay["path"]) / "python" / "agentkit").is_dir():
                agentkit_dir = Path(lay["path"]) / "python" / "agentkit"
        if agentkit_dir is None:
            agentkit_dir = ROOT / "layers" / "agentkit" / "agentkit"
        result["agentkit_bytes"] = sum(
            p.stat().st_size
            for p in agentkit_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
        if not args.no_reference:
            result["reference"] = reference_size(work)
        print()
        print(render(result))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
