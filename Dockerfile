# poolpilot operator image. `make image` builds it here with buildah, pulls off, on locally made
# stand-ins for the two bases (image/build.sh; README, Images); a normal build pulls the real ones.
# syntax=docker/dockerfile:1

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Dev dependencies include the `node` package (a Node 24 binary) that the image does not need;
# --ignore-scripts skips its download of that binary, the base image already is Node 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Distroless: no shell, no package manager at run time.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
USER 65532:65532
EXPOSE 8080 8081
# A young generation of at most 2 × 16 MiB (V8 sizes it from the machine's memory, up to 2 × 64 MiB):
# bench/results.md, issue 14.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=16", "dist/cli.js"]
CMD ["run"]
