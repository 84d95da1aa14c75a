"""Email output: view models, Jinja2 templates (HTML and text, en and fr) and the mailer."""
