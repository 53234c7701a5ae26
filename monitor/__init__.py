"""The processes of the loop after deploy: the label joiner (live metrics on ``/metrics``) and the controller
(Alertmanager's webhook receiver). Each has a ``main(argv)`` entry point; ``python -m monitor.joiner`` and
``python -m monitor.controller`` run them."""
