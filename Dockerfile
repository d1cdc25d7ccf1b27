# One replica of `digits serve`: it keeps no state, so run as many as you like
# behind a load balancer (see docs/serving.md).
#   docker build -t digits .
#   docker run -p 8001:8000 digits                                  # the model the package ships
#   docker run -p 8002:8000 -v $PWD/runs/x:/model digits --model /model
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[serve]'
# Workers default to the host's cores: give `--workers N` to match `docker run --cpus N`.
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"
ENTRYPOINT ["digits", "serve", "--host", "0.0.0.0", "--port", "8000"]
