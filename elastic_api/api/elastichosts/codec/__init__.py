"""The ElasticHosts dialect's codecs: typed values parsed from and rendered to its properties."""
