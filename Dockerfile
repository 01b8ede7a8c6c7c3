# cellstream on Node 20. Build: docker build -t cellstream .  Run: docker run cellstream --help
FROM node:20-bookworm-slim AS build
WORKDIR /app
# A C compiler for the native step kernel (without it the build falls back to the wasm kernel).
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm rebuild lmdb msgpackr-extract
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY native ./native
# The project's own build: tsc, the dashboard's browser files next to the compiled server, the native kernel.
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
# What the npm package ships (package.json "files"), so `serve` finds its demo model and config.
COPY --from=build /app/dist ./dist
COPY --from=build /app/build/native ./build/native
COPY package.json ./
COPY bin ./bin
COPY config ./config
COPY demo ./demo
COPY examples ./examples
# The native kernel's source and build script, as the npm package ships them (its install script).
COPY native ./native
COPY scripts/build-native.mjs ./scripts/build-native.mjs
RUN mkdir -p /var/lib/cellstream && chown node:node /var/lib/cellstream
USER node
# SIGTERM from `docker stop` shuts the pipeline down gracefully (finish the batch, commit, leave).
ENTRYPOINT ["node", "bin/cellstream.js"]
