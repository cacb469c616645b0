# One image for every role; compose.yaml picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv==0.13.9 && useradd --create-home --uid 10001 smartcity
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY chain ./chain
COPY services ./services
COPY iot_gateway ./iot_gateway
COPY smartcity ./smartcity
RUN uv sync --locked --no-dev
USER smartcity
ENTRYPOINT ["smartcity"]
