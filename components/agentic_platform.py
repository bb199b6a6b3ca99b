"""AgenticPlatform: composes the layers in order. The only place that wires one layer's outputs
into another; nothing below it knows which environment it is in."""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.config import PlatformConfig
from components.network import Network, NetworkArgs


class AgenticPlatform(pulumi.ComponentResource):
    """The whole platform of one stack."""

    def __init__(self, name: str, config: PlatformConfig, secrets: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:index:AgenticPlatform", name, None, opts)
        cluster_name = config.cluster_name
        tags = {"agentic.platform/cluster": cluster_name, "agentic.platform/environment": config.environment,
                "managed-by": "pulumi"}
        child = pulumi.ResourceOptions(parent=self)

        self.network = Network("network", NetworkArgs(config.network, cluster_name, tags), child)
        self.cluster = Cluster("cluster", ClusterArgs(
            config=config.cluster, cluster_name=cluster_name, vpc_id=self.network.vpc_id,
            private_subnet_ids=self.network.private_subnet_ids, protect_data=config.protect_data,
            tags=tags), child)
        # Every Kubernetes object below uses the cluster's provider, inherited from its layer.
        k8s = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.cluster.provider})  # noqa: F841

        # <<layers>>

        self.outputs: dict[str, Any] = {
            "clusterName": self.cluster.cluster_name,
            "clusterEndpoint": self.cluster.endpoint,
            "kubeconfig": self.cluster.kubeconfig,
            "vpcId": self.network.vpc_id,
            "privateSubnetIds": self.network.private_subnet_ids,
            "publicSubnetIds": self.network.public_subnet_ids,
        }
        # <<outputs>>
        self.register_outputs(self.outputs)
