import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { type HttpApiContext, tenantOf } from '../context.js';
import { AnyObject, ErrorBody, errorResponses, type TypeBoxTypeProvider } from '../schemas.js';

const ModelVersion = Type.Object({
  id: Type.String(),
  version: Type.Integer(),
  createdAt: Type.Integer(),
  document: AnyObject,
});

const ModelId = Type.Object({ modelId: Type.String() });

export const modelRoutes: FastifyPluginAsync<{ context: HttpApiContext }> = async (fastify, { context }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['models'];

  app.put(
    '/models/:modelId',
    {
      config: { access: 'models:write' },
      schema: {
        summary: 'Store a thing model (W3C WoT Thing Model JSON) as a new version',
        description:
          'Returns 201 with the new version, or 200 with the latest version when the document is unchanged. An invalid model is refused with every problem listed in `details`.',
        tags,
        params: ModelId,
        body: AnyObject,
        response: { 200: ModelVersion, 201: ModelVersion, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { model, created } = await tenantOf(context, request).models.put(request.params.modelId, request.body);
      return reply.code(created ? 201 : 200).send(model);
    },
  );

  app.get(
    '/models',
    {
      config: { access: 'models:read' },
      schema: {
        summary: 'List thing models (latest version of each)',
        tags,
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({ id: Type.String(), title: Type.String(), latestVersion: Type.Integer(), updatedAt: Type.Integer() }),
            ),
          }),
        },
      },
    },
    async (request) => ({ items: await tenantOf(context, request).models.list() }),
  );

  app.get(
    '/models/:modelId',
    {
      config: { access: 'models:read' },
      schema: {
        summary: 'Read a thing model (latest, or ?version=N)',
        tags,
        params: ModelId,
        querystring: Type.Object({ version: Type.Optional(Type.Integer({ minimum: 1 })) }),
        response: { 200: ModelVersion, 404: ErrorBody },
      },
    },
    async (request) => tenantOf(context, request).models.get(request.params.modelId, request.query.version),
  );

  app.get(
    '/models/:modelId/versions',
    {
      config: { access: 'models:read' },
      schema: {
        summary: 'Every version of a thing model, oldest first',
        tags,
        params: ModelId,
        response: { 200: Type.Object({ items: Type.Array(ModelVersion) }), 404: ErrorBody },
      },
    },
    async (request) => {
      const { modelId } = request.params;
      const items = await tenantOf(context, request).models.versions(modelId);
      if (items.length === 0) await tenantOf(context, request).models.get(modelId);
      return { items };
    },
  );
};
