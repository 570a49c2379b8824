# One image, every role: `ferry extract | transform | load | run | replay | status | lint | sandbox`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ferry

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 ferry
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
COPY config /etc/ferry
ENV FERRY_CONFIG=/etc/ferry/ferry.toml \
    FERRY_LOG_FORMAT=json
USER ferry
EXPOSE 9100 9180
ENTRYPOINT ["ferry"]
CMD ["--help"]
