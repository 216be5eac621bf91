# syntax=docker/dockerfile:1

# --- build: compile TypeScript to dist/ -----------------------------------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and dist/ only -----------------------------
# No dev dependency, and no optional one: oidc-provider is optional because only demo mode uses it,
# and demo mode is refused under NODE_ENV=production and imported only when it runs.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist

# Files stay owned by root; the process runs as the unprivileged "node" user of the base image,
# given by number so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 1000:1000
EXPOSE 8080

# Slim images have no curl: probe with node itself. Follows BFF_PORT and the base path of
# BFF_PUBLIC_URL; assumes BFF_HOST is 0.0.0.0 (the default) or 127.0.0.1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const u = process.env.BFF_PUBLIC_URL; const base = u ? new URL(u).pathname.replace(/[/]+$/, '') : ''; fetch('http://127.0.0.1:' + (process.env.BFF_PORT || 8080) + base + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));"]

CMD ["node", "dist/main.js"]
