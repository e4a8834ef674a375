# shellcheck shell=bash
# Pinned versions of what tests/cluster/build makes besides the kube binary
# (whose versions are in kube/go.mod), sourced by build and node.sh.
HELM_VERSION="v3.19.5"
COREDNS_VERSION="v1.14.7"
# The pause image Kubernetes 1.35 pairs with (kubeadm's PauseVersion), from
# pause.c in the k8s.io/kubernetes module.
PAUSE_VERSION="3.10.1"
