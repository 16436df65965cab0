"""Deployment assets: kustomize manifests (infra/k8s), rendered by kubectl, and the project's checks of them."""
