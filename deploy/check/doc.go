// Package check holds the tests of deploy/: the Dockerfile, Docker Compose, the Kubernetes
// manifests and the Prometheus alert rules, checked against the arubug binary they deploy.
// It is a module of its own (deploy/check/go.mod) so that the Kubernetes, kustomize and
// BuildKit libraries it needs stay out of the service's go.mod. Run it with
// `make deploy-check`.
package check
