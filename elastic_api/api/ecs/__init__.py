"""The Seeweb ECS v2 dialect (ECS.md): mounted by `app.mount` at /ecs/v2."""
