"""The BentoML scoring service (``service.service:FraudService``) and its helpers.

``service.model_store`` saves a scorer into BentoML's model store and finds the one to serve;
``service.schemas`` documents the request and response bodies; ``service.guard`` is the ASGI
middleware for request ids, the API key and the body size limit. Parsing and validation live in
``fraud_detection.serving.contract`` (no web framework there).
"""
