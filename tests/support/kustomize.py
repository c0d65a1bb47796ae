"""A small kustomize renderer, enough for deploy/k8s: no kustomize binary is on PyPI, and the
tests must run on a machine without kubectl.

Supports what the overlays use: `resources` (files and directories with a kustomization),
`namespace`, `labels` (pairs, metadata only), `images` (newName, newTag), `replicas`, and
`patches` given as strategic-merge patch files, merged the way kubectl does for these kinds:
maps recursively, lists of named items (containers, env, ports, volumes) by `name`, other
lists replaced. Where kubectl is installed, tests/unit/deploy/test_deploy.py checks that this
renders what `kubectl kustomize` renders.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]


def load_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Resource]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_documents(path)
    for patch_entry in kustomization.get("patches", []):
        for patch in load_documents(directory / patch_entry["path"]):
            target = _find(resources, patch["kind"], patch["metadata"]["name"])
            merged = merge(target, patch)
            target.clear()
            target.update(merged)
    for item in kustomization.get("replicas", []):
        _find_named(resources, item["name"])["spec"]["replicas"] = item["count"]
    for image in kustomization.get("images", []):
        for resource in resources:
            for container in _containers(resource):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    new_name = image.get("newName", name)
                    new_tag = image.get("newTag", tag)
                    container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
    for label_set in kustomization.get("labels", []):
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    if "namespace" in kustomization:
        for resource in resources:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge of `patch` into a copy of `base` (for the kinds used here)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        out = [copy.deepcopy(item) for item in base]
        index = {item["name"]: i for i, item in enumerate(out)}
        for item in patch:
            if item["name"] in index:
                out[index[item["name"]]] = merge(out[index[item["name"]]], item)
            else:
                out.insert(0, copy.deepcopy(item))  # kubectl puts new items first
        return out
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _find(resources: list[Resource], kind: str, name: str) -> Resource:
    for resource in resources:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise KeyError(f"no {kind} {name} to patch")


def _find_named(resources: list[Resource], name: str) -> Resource:
    for resource in resources:
        if resource["metadata"]["name"] == name and "replicas" in resource.get("spec", {}):
            return resource
    raise KeyError(f"no workload {name}")


def _containers(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def normalise(resources: list[Resource]) -> dict[tuple[str, str], Any]:
    """Resources keyed by kind and name, named lists turned into maps (order-free compare)."""

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            if _named(value):
                return {item["name"]: norm(item) for item in value}
            return [norm(v) for v in value]
        return value

    return {(r["kind"], r["metadata"]["name"]): norm(r) for r in resources}
