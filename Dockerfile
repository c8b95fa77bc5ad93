# poolpilot operator image. `make image` builds it here with buildah, pulls off, on locally made
# stand-ins for the two bases (image/build.sh; README, Images); a normal build pulls the real ones.
# syntax=docker/dockerfile:1

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Dev dependencies include the `node` package (a Node 24 binary) that the image does not need;
# --ignore-scripts skips its download of that binary, the base image already is Node 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json build.js ./
COPY src ./src
# One bundled ES module, dist/cli.js (build.js says why): the run stage needs no node_modules.
RUN node build.js

# Distroless: no shell, no package manager at run time.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
COPY --from=build /src/dist ./dist
COPY package.json ./
USER 65532:65532
EXPOSE 8080 8081
# A young generation of at most 2 × 16 MiB (V8 sizes it from the machine's memory, up to 2 × 64 MiB),
# and an old generation of at most half the container's memory limit: V8's own floor is 256 MiB,
# all of deploy/'s 256Mi, so without it a cgroup OOM kill comes before any GC that would prevent
# it (bench/results.md, issue 14, "Under the Pod's limits").
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=16", "--max-old-space-size-percentage=50", "dist/cli.js"]
CMD ["run"]
