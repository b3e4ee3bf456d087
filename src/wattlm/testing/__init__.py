"""Test helpers shipped with the package: tiny models, fake meters, sample results and
shared conformance suites, so plug-in authors test against the same contracts."""
