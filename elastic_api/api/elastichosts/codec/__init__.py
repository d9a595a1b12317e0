"""The ElasticHosts codec: wire properties parsed into typed specs and changes, typed values rendered back."""
