"""EC2 instance facts now live in the domain (`domain/instances.py`); this name stays for callers
that still import it from here."""

from domain.instances import INSTANCES_FILE, InstanceFacts, instance_facts, is_gpu, known_instance_types

__all__ = ["INSTANCES_FILE", "InstanceFacts", "instance_facts", "is_gpu", "known_instance_types"]
