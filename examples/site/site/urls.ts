// The URL map, as in Django's urls.py.
import express, { Router } from 'express';
import type { views as makeViews } from './views.js';

export function urls(view: ReturnType<typeof makeViews>): Router {
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '16kb' });
  const json = express.json({ limit: '16kb' });
  router.get('/', view.home);
  router.get('/page/:page/', view.home);
  router.get('/article/:slug/', view.article);
  router.get('/tag/:slug/', view.tag);
  router.get('/feed.xml', view.feed);
  router.get('/api/comments/:id', view.commentCount);
  router.post('/api/comments/:id', view.addComment);
  router.get('/login', view.loginForm);
  router.post('/login', form, view.login);
  router.post('/logout', view.logout);
  // An article's body is larger than a login form.
  const articleForm = express.urlencoded({ extended: false, limit: '512kb' });
  router.get('/admin/article/:id/', view.editor);
  router.post('/admin/article/:id/', articleForm, view.edit);
  router.post('/admin/article/:id/title', form, json, view.retitle);
  return router;
}
