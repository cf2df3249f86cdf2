// The URL map, as in Django's urls.py.
import express, { Router } from 'express';
import type { views as makeViews } from './views.js';

export function urls(view: ReturnType<typeof makeViews>): Router {
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '16kb' });
  const json = express.json({ limit: '16kb' });
  router.get('/', view.home);
  router.get('/article/:slug/', view.article);
  router.get('/tag/:slug/', view.tag);
  router.get('/feed.xml', view.feed);
  router.get('/api/comments/:id', view.commentCount);
  router.post('/api/comments/:id', view.addComment);
  router.get('/login', view.loginForm);
  router.post('/login', form, view.login);
  router.post('/admin/article/:id/title', form, json, view.retitle);
  return router;
}
