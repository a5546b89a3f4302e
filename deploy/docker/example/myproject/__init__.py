"""Sample Django project for rwsgi's Docker Compose and Kubernetes examples."""
