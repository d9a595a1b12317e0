"""The ElasticHosts wire format of each object: props parsed into typed values, typed values rendered as info."""
