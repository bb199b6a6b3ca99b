"""Images: every container image is pinned — a digest, or a tag that is not `latest`. An image with
no tag is `:latest` (the container runtime's default, kubernetes.io/docs/concepts/containers/images),
so it may change under a running release and is pulled `Always` by default."""

from __future__ import annotations

import re

from plan.admission.pod_security import pod_templates
from plan.objects import K8sObject

_TAG = re.compile(r":([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None."""
    if not image or image.strip() != image:
        return f"{image!r} is not an image reference"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    tag = _TAG.search(last)
    if not tag:
        return f"{image} has no tag (it runs :latest)"
    if tag.group(1) == "latest":
        return f"{image} is :latest"
    return None


def check(objects: list[K8sObject]) -> list[tuple[K8sObject, str]]:
    problems = []
    for o in objects:
        for path, _meta, spec in pod_templates(o.manifest):
            for key in ("initContainers", "containers", "ephemeralContainers"):
                for c in spec.get(key) or []:
                    why = image_problem(str(c.get("image", "")))
                    if why:
                        problems.append((o, f"{path}.{key}[{c.get('name')}]: {why}"))
    return problems
