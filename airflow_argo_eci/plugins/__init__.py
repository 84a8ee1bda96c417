"""The Argo view inside the Airflow UI: an Airflow plugin (FastAPI app + external views) that ships
with the provider. ``argo_view`` holds the app and the plugin, ``pages`` the HTML, ``render`` the
node tree and the SVG graph, ``static/`` the styles and script."""
