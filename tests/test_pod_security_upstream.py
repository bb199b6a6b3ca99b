"""plan.admission.pod_security against upstream's own unit-test expectations (kubernetes/pod-security-admission
v0.34.9 policy/check_*_test.go), a realistic workload (Grafana's chown init container), and the
readers around check_pod: pod_templates, enforce_level, enforce_version."""

from __future__ import annotations

import pytest

from plan.admission.pod_security import (
    LATEST_VERSION,
    LEVELS,
    Violation,
    check_pod,
    enforce_level,
    enforce_version,
    pod_templates,
)
from tests.pod_security_fixtures import FIXTURES, checks, load, message

# ---------------------------------------------------------------------------------------------
# Upstream's unit-test expectations (policy/check_*_test.go), through check_pod
# ---------------------------------------------------------------------------------------------


def test_upstream_capabilities_restricted_multiple_containers():
    spec = {"containers": [
        {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "BAR"]}}},
        {"name": "b", "securityContext": {"capabilities": {"add": ["BAR", "BAZ"]}}},
        {"name": "c", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]}}},
    ]}
    assert message(spec, "capabilities_restricted") == (
        'unrestricted capabilities (containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; '
        'containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add)'
    )
    windows = {"os": {"name": "windows"}, "containers": [{"name": "a"}]}
    assert "capabilities_restricted" not in checks(check_pod({}, windows, "restricted"))


def test_upstream_host_ports():
    spec = {"containers": [
        {"name": "a", "ports": [{"hostPort": 0}]},
        {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
        {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]},
    ]}
    assert message(spec, "hostPorts", "baseline") == 'hostPort (containers "b", "c" use hostPorts 10, 20, 30)'


def test_upstream_selinux_options():
    spec = {
        "securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
        "containers": [
            {"name": n, "securityContext": {"seLinuxOptions": opts}}
            for n, opts in [
                ("a", {"type": "container_t"}), ("b", {"type": "container_init_t"}), ("c", {"type": "container_kvm_t"}),
                ("d", {"type": "container_engine_t"}), ("e", {"type": "bar"}), ("f", {"user": "bar"}), ("g", {"role": "baz"}),
            ]
        ],
    }
    assert message(spec, "seLinuxOptions", "baseline") == (
        'seLinuxOptions (pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
        'types "bar", "foo"; user may not be set; role may not be set)'
    )
    # container_engine_t is allowed from v1.31 (seLinuxOptions1_31) only.
    engine = {"containers": [{"name": "d", "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}]}
    assert check_pod({}, engine, "baseline", "v1.31") == []
    assert message(engine, "seLinuxOptions", "baseline", "v1.30") == (
        'seLinuxOptions (container "d" set forbidden securityContext.seLinuxOptions: type "container_engine_t")'
    )


def test_upstream_restricted_volumes():
    allowed = ["emptyDir", "secret", "persistentVolumeClaim", "downwardAPI", "configMap", "projected", "csi", "ephemeral", "image"]
    restricted = ["hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
                  "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
                  "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos"]
    volumes = [{"name": f"a{i}", source: {}} for i, source in enumerate(allowed, 1)]
    volumes += [{"name": f"b{i}", source: {}} for i, source in enumerate(restricted, 1)]
    # Upstream's unit test also has a source-less volume ("unknown"); through the API server it is
    # defaulted to emptyDir (SetDefaults_Volume), as the pass fixture restrictedvolumes0 shows.
    volumes.append({"name": "c1"})
    assert message({"volumes": volumes}, "restrictedVolumes") == (
        "restricted volume types (volumes "
        + ", ".join(f'"b{i}"' for i in range(1, 22))
        + ' use restricted volume types "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", '
        '"flexVolume", "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "hostPath", "iscsi", "nfs", '
        '"photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume")'
    )


def test_upstream_seccomp_restricted():
    spec = {
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "a"}, {"name": "b", "securityContext": {}},
            {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {"name": "d", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {"name": "e", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
        ],
    }
    assert message(spec, "seccompProfile_restricted") == (
        'seccompProfile (containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined")'
    )
    fallthrough = {"containers": [{"name": "a"}, {"name": "b", "securityContext": {}},
                                  {"name": "d", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}]}
    assert message(fallthrough, "seccompProfile_restricted") == (
        'seccompProfile (pod or containers "a", "b" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    )


def test_upstream_seccomp_baseline_annotations_before_1_19():
    metadata = {"annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/b": "unknown",
    }}
    spec = {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    assert message(spec, "seccompProfile_baseline", "baseline", "v1.18", metadata) == (
        "seccompProfile (forbidden annotations container.seccomp.security.alpha.kubernetes.io/a=\"unconfined\", "
        'container.seccomp.security.alpha.kubernetes.io/b="unknown", seccomp.security.alpha.kubernetes.io/pod="unconfined")'
    )
    assert check_pod(metadata, spec, "baseline", "v1.19") == []  # from 1.19 the fields, not the annotations


def test_upstream_apparmor_annotations():
    metadata = {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/": "bogus",
        "container.apparmor.security.beta.kubernetes.io/a": "",
        "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/c": "localhost/",
        "container.apparmor.security.beta.kubernetes.io/d": "localhost/foo",
        "container.apparmor.security.beta.kubernetes.io/e": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/f": "unknown",
    }}
    assert message({}, "appArmorProfile", "baseline", metadata=metadata) == (
        "forbidden AppArmor profiles (annotations must not set AppArmor profile type to "
        '"container.apparmor.security.beta.kubernetes.io/="bogus"", '
        '"container.apparmor.security.beta.kubernetes.io/e="unconfined"", '
        '"container.apparmor.security.beta.kubernetes.io/f="unknown"")'
    )
    spec = {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "foo"}],
            "initContainers": [{"name": "bar", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]}
    assert message(spec, "appArmorProfile", "baseline") == (
        'forbidden AppArmor profile (container "bar" must not set AppArmor profile type to "Unconfined")'
    )


def test_upstream_host_probes_and_lifecycle():
    spec = {"containers": [{
        "name": "a",
        "livenessProbe": {"httpGet": {"host": "127.0.0.1", "port": 80}},
        "readinessProbe": {"tcpSocket": {"host": "::1", "port": 80}},
        "startupProbe": {"httpGet": {"host": "localhost", "port": 80}},
        "lifecycle": {"preStop": {"httpGet": {"host": "", "port": 80}}},
    }]}
    assert message(spec, "hostProbesAndHostLifecycle", "baseline") == (
        'probe or lifecycle host (container "a" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost")'
    )

# ---------------------------------------------------------------------------------------------
# A realistic workload: Grafana's chown init container
# ---------------------------------------------------------------------------------------------


def grafana_pod() -> tuple[dict, dict]:
    """Like the Grafana Helm chart with persistence: init-chown-data runs as root to chown the volume."""
    metadata = {"labels": {"app.kubernetes.io/name": "grafana"}, "annotations": {"checksum/config": "abc"}}
    spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 472, "runAsGroup": 472, "fsGroup": 472,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{
            "name": "init-chown-data",
            "image": "docker.io/library/busybox:1.31.1",
            "command": ["chown", "-R", "472:472", "/var/lib/grafana"],
            "securityContext": {"runAsNonRoot": False, "runAsUser": 0,
                                "capabilities": {"add": ["CHOWN", "DAC_OVERRIDE"], "drop": ["ALL"]}},
            "volumeMounts": [{"name": "storage", "mountPath": "/var/lib/grafana"}],
        }],
        "containers": [{
            "name": "grafana",
            "image": "docker.io/grafana/grafana:12.0.0",
            "ports": [{"name": "grafana", "containerPort": 3000}],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            "readinessProbe": {"httpGet": {"path": "/api/health", "port": 3000}},
            "livenessProbe": {"httpGet": {"path": "/api/health", "port": 3000}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/grafana/grafana.ini", "subPath": "grafana.ini"},
                             {"name": "storage", "mountPath": "/var/lib/grafana"}],
        }],
        "volumes": [{"name": "config", "configMap": {"name": "grafana"}},
                    {"name": "storage", "persistentVolumeClaim": {"claimName": "grafana"}}],
    }
    return metadata, spec


def test_grafana_init_container_under_restricted():
    metadata, spec = grafana_pod()
    assert check_pod(metadata, spec, "restricted") == [
        Violation("allowPrivilegeEscalation", 'allowPrivilegeEscalation != false (container "init-chown-data" '
                  "must set securityContext.allowPrivilegeEscalation=false)"),
        Violation("capabilities_restricted", 'unrestricted capabilities (container "init-chown-data" must not include '
                  '"CHOWN", "DAC_OVERRIDE" in securityContext.capabilities.add)'),
        Violation("runAsNonRoot", 'runAsNonRoot != true (container "init-chown-data" '
                  "must not set securityContext.runAsNonRoot=false)"),
        Violation("runAsUser", 'runAsUser=0 (container "init-chown-data" must not set runAsUser=0)'),
    ]
    # CHOWN and DAC_OVERRIDE are in the default set: baseline allows the pod.
    assert check_pod(metadata, spec, "baseline") == []


def test_grafana_fixed_passes_restricted():
    metadata, spec = grafana_pod()
    spec["initContainers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 472, "capabilities": {"drop": ["ALL"]},
    }
    assert check_pod(metadata, spec, "restricted") == []
    # Or drop the init container and let fsGroup own the volume.
    metadata, spec = grafana_pod()
    del spec["initContainers"]
    assert check_pod(metadata, spec, "restricted") == []


# ---------------------------------------------------------------------------------------------
# pod_templates, enforce_level, enforce_version
# ---------------------------------------------------------------------------------------------

POD_META = {"labels": {"app": "x"}, "annotations": {"a": "b"}}
POD_SPEC = {"containers": [{"name": "c", "image": "i"}]}
TEMPLATE = {"metadata": POD_META, "spec": POD_SPEC}


@pytest.mark.parametrize(("kind", "obj", "path"), [
    ("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": POD_META, "spec": POD_SPEC}, "spec"),
    ("Deployment", {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("ReplicaSet", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("StatefulSet", {"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("DaemonSet", {"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("Job", {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("ReplicationController", {"apiVersion": "v1", "kind": "ReplicationController", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
    ("CronJob", {"apiVersion": "batch/v1", "kind": "CronJob",
                 "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}}},
     "spec.jobTemplate.spec.template.spec"),
    ("PodTemplate", {"apiVersion": "v1", "kind": "PodTemplate", "template": TEMPLATE}, "template.spec"),
])
def test_pod_templates(kind: str, obj: dict, path: str):
    assert pod_templates(obj) == [(path, POD_META, POD_SPEC)]


def test_pod_templates_others():
    assert pod_templates({"apiVersion": "v1", "kind": "Service", "spec": {"template": TEMPLATE}}) == []
    assert pod_templates({"apiVersion": "v1", "kind": "ConfigMap", "data": {}}) == []
    assert pod_templates({}) == []
    assert pod_templates({"kind": "ReplicationController", "spec": {"replicas": 1}}) == []  # template is optional
    assert pod_templates({"kind": "CronJob", "spec": {"jobTemplate": {}}}) == []
    assert pod_templates({"kind": "Pod"}) == [("spec", {}, {})]
    assert pod_templates({"kind": "Deployment", "spec": {"template": {"spec": POD_SPEC}}}) == [("spec.template.spec", {}, POD_SPEC)]


def test_pod_templates_feed_check_pod():
    metadata, spec = grafana_pod()
    cronjob = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"metadata": metadata, "spec": spec}}}}}
    [(path, meta, pod_spec)] = pod_templates(cronjob)
    assert path == "spec.jobTemplate.spec.template.spec"
    assert checks(check_pod(meta, pod_spec, "restricted")) == [
        "allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "runAsUser",
    ]


def test_enforce_level():
    assert enforce_level({}) == "privileged"
    assert enforce_level(None) == "privileged"  # type: ignore[arg-type]
    assert enforce_level({"kubernetes.io/metadata.name": "ns"}) == "privileged"
    assert enforce_level({"pod-security.kubernetes.io/warn": "restricted"}) == "privileged"  # warn is not enforce
    for level in LEVELS:
        assert enforce_level({"pod-security.kubernetes.io/enforce": level}) == level
    assert enforce_level({"pod-security.kubernetes.io/enforce": "Restricted"}) == "restricted"  # invalid: fails closed
    assert enforce_level({"pod-security.kubernetes.io/enforce": ""}) == "restricted"


def test_enforce_version():
    assert LATEST_VERSION == "v1.34"
    assert enforce_version({}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce": "baseline"}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "latest"}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "v1.25"}) == "v1.25"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "v1.99"}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "1.25"}) == "v1.34"  # invalid: latest
    labels = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.33"}
    metadata, spec = load(FIXTURES / "baseline/v1.34/fail/hostprobesandhostlifecycle0.yaml")
    assert check_pod(metadata, spec, enforce_level(labels), enforce_version(labels)) == []
    assert check_pod(metadata, spec, enforce_level(labels), enforce_version({})) != []
