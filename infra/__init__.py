"""Deployment assets: kustomize manifests (infra/k8s), their offline renderer and checks."""
