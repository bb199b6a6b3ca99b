"""Admission as the API server and its admission plugins would do it: schema, Pod Security,
ResourceQuota and LimitRange, references, images, pod DNS and Pod Identity (plan/admission/admit.py runs them)."""
