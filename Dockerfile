# consensus_raft as a FROM scratch image: the compiled binary, the glibc files it loads, nothing else
# (no shell; `consensus health` is the probe). The build context is the folder that
# scripts/image-root.sh prepares:
#   npm run build && scripts/image-root.sh && docker build -f Dockerfile -t consensus_raft dist/image
FROM scratch
COPY rootfs/ /
# /data is where the service keeps its Raft data (raft_data_path is relative to it); uid 1000 owns it,
# so a named volume mounted there starts out writable too.
COPY --chown=1000:1000 data/ /data/
ENV PATH=/usr/bin
# Numeric, so no /etc/passwd is needed; uid 1000 is what Kubernetes runs the Rust image as.
USER 1000:1000
WORKDIR /data
EXPOSE 50001 60001
# A clean stop (leader hand-off first) takes at most 5 s: keep `docker stop -t` at 10 s or more.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["consensus", "health", "--addr", "localhost:50001"]
# The Rust image's deployed command (cloud-config), as the default.
CMD ["consensus", "run", "-c", "/etc/cita-cloud/config/config.toml", "--stdout"]
