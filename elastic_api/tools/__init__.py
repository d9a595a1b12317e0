"""The client tools: elastichosts, elastichosts-upload and elastichosts-download."""
