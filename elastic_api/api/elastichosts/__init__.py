"""The ElasticHosts (ElasticStack) dialect: HTTP Basic, text/plain or JSON properties, X-Elastic-* headers."""
