# Placeholder image (the packaging issue completes it): FROM scratch with only the compiled binary
# and the five glibc files it links (see ../shared/reference/stack-notes.md §5). Prepare rootfs/ first:
#   npm run build
#   mkdir -p rootfs/usr/bin && cp dist/consensus rootfs/usr/bin/
#   for l in $(ldd dist/consensus | grep -o '/lib[^ ]*'); do mkdir -p rootfs$(dirname $l); cp -L $l rootfs$l; done
# /usr/bin keeps the deployed command line `consensus run -c ... --stdout` working unchanged.
FROM scratch
COPY rootfs/ /
USER 1000:1000
ENTRYPOINT ["/usr/bin/consensus"]
CMD ["run", "-c", "/etc/cita-cloud/config/config.toml", "--stdout"]
