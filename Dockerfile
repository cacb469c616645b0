# One image for every role; compose.yaml picks the command.
# The build stage compiles the state tree's C extension (native/: a C compiler and OpenSSL's
# headers); the image itself carries neither, only the environment built here.
FROM python:3.11-slim AS build
ENV PYTHONDONTWRITEBYTECODE=1 UV_PROJECT_ENVIRONMENT=/opt/venv
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY native ./native
RUN uv sync --locked --no-dev --no-install-project
COPY chain ./chain
COPY services ./services
COPY iot_gateway ./iot_gateway
COPY smartcity ./smartcity
RUN uv sync --locked --no-dev \
    && /opt/venv/bin/python -c "import chain.smt as t; assert t.IMPLEMENTATION == 'c', 'no C tree'"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 10001 smartcity
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER smartcity
ENTRYPOINT ["smartcity"]
